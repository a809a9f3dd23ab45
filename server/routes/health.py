"""``GET /health``: liveness plus index stats (documents, chunks, embedder, generation).

No key is needed, so nothing here names a server path (the index directory used to be shown),
and ``documents`` counts the documents table, as ``GET /documents`` does (counting documents
from chunks missed one with no chunks: the two routes disagreed).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.deps import GeneratorDep, IndexDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and index stats")
def health(index: IndexDep, settings: SettingsDep, generator: GeneratorDep) -> dict[str, Any]:
    stats = {k: v for k, v in index.stats().items() if k != "directory"}
    stats["documents"] = len(index.documents())
    return {"status": "ok", "index": stats,
            "generator": generator.name if generator is not None else "extractive",
            "auth": settings.api_key is not None and settings.api_key != ""}
