"""Collections over HTTP: ``GET /collections`` (those the caller may read), ``POST /collections``
(create), ``DELETE /collections/{name}?confirm={name}`` (drop), and each collection's documents and
upload jobs under ``/collections/{name}/``: the routes of ``server.routes.documents`` and
``server.routes.jobs``, mounted once more (``/documents`` and ``/jobs`` are the default's).

Creating needs admin on ``*`` (with a keys file) or RAG_API_KEY (without one, when it is set);
dropping needs admin on that collection. A collection the caller may not read is 404, word for
word as one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rag.errors import InputError, NotFoundError
from rag.store.collections import DEFAULT, NAME_PATTERN
from server.deps import CallerDep, CollectionsDep, StateDep
from server.routes import documents

__all__ = ["router"]

router = APIRouter(tags=["collections"])


class CreateCollection(BaseModel):
    name: str = Field(description=f"the new collection's name ({NAME_PATTERN})")


@router.get("/collections", summary="The collections this caller may read, with its rights on each")
def list_collections(collections: CollectionsDep) -> dict[str, Any]:
    found = []
    for name in collections.names():
        try:
            index = collections.get(name).snapshot()
        except NotFoundError:  # dropped meanwhile
            continue
        found.append({"name": name, "documents": len(index.documents()), "chunks": len(index),
                      "rights": collections.caller.rights(name)})
    return {"collections": found}


@router.post("/collections", status_code=201, summary="Create an empty collection",
             responses={201: {"description": "the new collection"},
                        409: {"description": "a collection by that name exists"}})
def create_collection(body: CreateCollection, state: StateDep, caller: CallerDep) -> JSONResponse:
    if not caller.is_admin():
        raise caller.denied("create collections")
    collection = state.create(body.name)
    return JSONResponse({"name": collection.name, "documents": 0, "chunks": 0}, status_code=201)


@router.delete("/collections/{name}", summary="Drop a collection and every document in it")
def drop_collection(name: Annotated[str, Path(description="the collection")],
                    collections: CollectionsDep, state: StateDep,
                    confirm: Annotated[str | None, Query(description="the collection's name again")] = None,
                    ) -> dict[str, Any]:
    """Requests reading the collection finish first; its upload jobs are cancelled."""
    collections.check(name, "admin")
    if name == DEFAULT:
        raise InputError("the default collection cannot be dropped; `rag ingest --rebuild` empties it")
    if confirm != name:
        raise InputError(f"to drop collection {name!r}, repeat its name as confirm:"
                         f" DELETE /collections/{name}?confirm={name}")
    state.drop(name)
    return {"dropped": name}


def _collection_name(name: Annotated[str, Path(description="the collection (GET /collections)")]) -> None:
    """Declares ``{name}`` for the mounted routes (``server.deps`` reads it from the path)."""


router.include_router(documents.router, prefix="/collections/{name}",
                      dependencies=[Depends(_collection_name)])
