"""``GET /health``: liveness, plus stats of the default collection (documents, chunks, embedder,
generation) for a caller that may read it.

No key is needed, so nothing here names a server path (the index directory used to be shown),
and ``documents`` counts the documents table, as ``GET /documents`` does (counting documents
from chunks missed one with no chunks: the two routes disagreed). With a keys file, a request
without a valid key gets ``{"status": "ok"}`` and nothing more.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rag.store.collections import DEFAULT
from server.deps import GeneratorDep, StateDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and index stats")
def health(request: Request, state: StateDep, generator: GeneratorDep) -> dict[str, Any]:
    caller = state.access.caller(request.headers.get("authorization"))
    if caller.scoped and caller.key is None:
        return {"status": "ok"}
    body: dict[str, Any] = {"status": "ok"}
    if caller.can("read", DEFAULT):
        index = state.collection(DEFAULT).snapshot()
        stats = {k: v for k, v in index.stats().items() if k != "directory"}
        stats["documents"] = len(index.documents())
        body["index"] = stats
    body["generator"] = generator.name if generator is not None else "extractive"
    body["auth"] = state.access.scoped or state.access.api_key is not None
    return body
