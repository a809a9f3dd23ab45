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
    generator: str = "auto"  # "auto" (rag.generate.AUTO) | "extractive" | "local" | "openai"
    refuse_below: float | None = None  # override the calibrated refusal threshold
    # LLM generators: "local" runs a GGUF with llama.cpp, "openai" calls an OpenAI-compatible server
    local_model: str = "qwen-0.5b"  # "qwen-0.5b" | "qwen-1.5b" | a path to a .gguf file
    model_cache: Path | None = None  # where bundled GGUFs are assembled (~/.cache/wenda/models)
    llm_threads: int | None = None  # llama.cpp threads (default: all cores)
    llm_max_tokens: int = 384
    llm_base_url: str | None = None  # e.g. https://api.deepseek.com/v1, http://127.0.0.1:11434/v1
    llm_model: str | None = None
    llm_api_key: str | None = None
    # server
    api_key: str | None = None
    cors_origins: list[str] = []
    max_upload_bytes: int = 5_000_000
    rate_limit_per_minute: int | None = None  # requests per client (IP) per minute; None: off


@lru_cache
def get_settings() -> Settings:
    return Settings()
