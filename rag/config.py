"""The one place configuration is read: ``Settings`` from ``RAG_*`` environment variables.

Only edges (CLI, server, evals) build a ``Settings``; library functions take plain arguments.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    index_dir: Path = Path(".rag")
    seeds_dir: Path = Path("seeds")
    embedder: str = "e5"  # "e5" | "use" | "hash" | a sentence-transformers folder or name
    top_k: int = 5
    max_top_k: int = 50
    max_question_chars: int = 2000
    chunk_size: int = 240
    chunk_overlap: int = 1  # sentences carried over between chunks
    generator: str = "auto"  # "auto" | "extractive" | "local" | "openai"
    refuse_below: float | None = None  # override the calibrated refusal threshold
    # server
    api_key: str | None = None
    cors_origins: list[str] = []
    max_upload_bytes: int = 5_000_000


@lru_cache
def get_settings() -> Settings:
    return Settings()
