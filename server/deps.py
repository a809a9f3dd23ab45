"""What routes depend on, as ``Annotated`` aliases.

``StateDep``, ``SettingsDep``, ``GeneratorDep``: what the app's lifespan loaded (``server.state``).
``CallerDep``: who the request comes from (``server.access``; 401 with a keys file and no valid key).
``CollectionsDep``: the collections as this request may use them: ``get(name, right)`` checks the
caller's right (404 ``no collection`` if it may not read it, 403 if it may read but not ``right``)
and holds the collection until the response is sent, so a drop waits for it.
``Readable``, ``Writable``: the collection a route's path names (``/collections/{name}/...``, or
the default one for ``/documents`` and ``/jobs``), checked for that right.

Nothing here loads a model or reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Annotated

from fastapi import Depends, Request

from rag.answer.generate import Generator
from rag.config import Settings
from rag.store.collections import DEFAULT, check_name
from server.access import Caller
from server.state import Collection, State

__all__ = ["CallerDep", "Collection", "Collections", "CollectionsDep", "GeneratorDep", "Readable",
           "SettingsDep", "State", "StateDep", "Writable", "get_state"]


def get_state(request: Request) -> State:
    state: State = request.app.state.wenda
    return state


StateDep = Annotated[State, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_generator(state: StateDep) -> Generator | None:
    return state.generator


def get_caller(request: Request, state: StateDep) -> Caller:
    caller = state.access.caller(request.headers.get("authorization"))
    if caller.scoped and caller.key is None:
        raise caller.denied("")  # 401 (the middleware refuses these before the body already)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


class Collections:
    """The server's collections as one request may use them."""

    def __init__(self, state: State, caller: Caller) -> None:
        self.state, self.caller = state, caller
        self._held = ExitStack()

    def names(self) -> list[str]:
        """The collections the caller may read, ``default`` first."""
        return self.caller.readable(self.state.names())

    def check(self, name: str, right: str = "read") -> Collection:
        """The collection, if the caller may use ``right`` on it (not held: see ``get``)."""
        check_name(name)
        self.caller.require("read", name)  # before the lookup: unreadable and missing, the same 404
        collection = self.state.collection(name)
        self.caller.require(right, name)
        return collection

    def get(self, name: str, right: str = "read") -> Collection:
        """``check``, and held until the response is sent."""
        return self._held.enter_context(self.check(name, right).used())

    def release(self) -> None:
        self._held.close()


def get_collections(state: StateDep, caller: CallerDep) -> Iterator[Collections]:
    collections = Collections(state, caller)
    try:
        yield collections
    finally:  # after the response is sent, streams included
        collections.release()


CollectionsDep = Annotated[Collections, Depends(get_collections)]


def _named(right: str) -> Callable[[Request, Collections], Collection]:
    def collection(request: Request, collections: CollectionsDep) -> Collection:
        return collections.get(request.path_params.get("name", DEFAULT), right)
    return collection


Readable = Annotated[Collection, Depends(_named("read"))]
Writable = Annotated[Collection, Depends(_named("write"))]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GeneratorDep = Annotated[Generator | None, Depends(get_generator)]
