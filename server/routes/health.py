"""``GET /health``: liveness plus index stats (documents, chunks, embedder, generation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.deps import GeneratorDep, IndexDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and index stats")
def health(index: IndexDep, settings: SettingsDep, generator: GeneratorDep) -> dict[str, Any]:
    return {"status": "ok", "index": index.stats(),
            "generator": generator.name if generator is not None else "extractive",
            "auth": settings.api_key is not None and settings.api_key != ""}
