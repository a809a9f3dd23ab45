"""The one place configuration is read: ``Settings`` from ``RAG_*`` environment variables.

Only edges (CLI, server, evals) build a ``Settings``; library functions take plain arguments.
A value out of range, or one that contradicts another (``top_k`` above ``max_top_k``), raises
``ConfigError`` naming the variable, so a bad setting stops ``rag serve`` at startup rather
than failing every request.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError
from rag.loaders import Limits
from rag.store.collections import Location

__all__ = ["Settings", "get_settings"]

_PREFIX = "RAG_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore")

    index_dir: Path = Path(".rag")
    # where the collections live: "local" (SQLite + FAISS + bm25s under index_dir) or "postgres"
    # (PostgreSQL with pgvector at database_url, shared by every replica; uploads stay in index_dir)
    backend: Literal["local", "postgres"] = "local"
    database_url: str | None = None  # postgresql://user:password@host:5432/db (never logged)
    seeds_dir: Path = Path("seeds")
    embedder: str = Field("e5", min_length=1)  # "e5" | "use" | "hash" | a sentence-transformers folder
    top_k: int = Field(5, ge=1)
    max_top_k: int = Field(50, ge=1, le=50)  # retrieval takes 50 candidates per path
    max_question_chars: int = Field(2000, ge=1)
    chunk_size: int = Field(240, ge=20)
    chunk_overlap: int = Field(1, ge=0)  # sentences carried over between chunks
    # documents: what one file may cost (over a limit it is refused, never half-read)
    max_pages: int = Field(2_000, ge=1)  # PDF pages, slides
    max_document_chars: int = Field(5_000_000, ge=1)  # extracted characters per file
    max_unpacked_bytes: int = Field(200_000_000, ge=1)  # decompressed zip members / PDF streams
    ocr: bool = True  # read scans and images with OCR when the `ocr` extra is installed
    max_ocr_pages: int = Field(100, ge=0)  # per file: OCR costs ~3-12 s a page on 2 cores
    generator: str = "auto"  # "auto" (rag.answer.generate.AUTO) | "extractive" | "local" | "openai"
    refuse_below: float | None = Field(None, ge=0.0, le=1.0)  # override the calibrated threshold
    # the trained reader (rag.answer.reading): "off", or how its verdict is used: "reader" (it decides
    # refusal), "both" (it and the coverage gate must agree), "span" (it picks the span and the
    # sentence that leads the answer), "short" (it only gives the short answer, inside the answer),
    # "confident" (as "short", and it leads with its own sentence where the answer does not quote
    # its span; it overrules the gate where it is sure; evals.reader_pipeline)
    reader: Literal["off", "reader", "both", "span", "short", "confident"] = "confident"
    # LLM generators: "local" runs a GGUF with llama.cpp, "openai" calls an OpenAI-compatible server
    local_model: str = "qwen-0.5b"  # "qwen-0.5b" | "qwen-1.5b" | a path to a .gguf file
    model_cache: Path | None = None  # where bundled GGUFs are assembled (~/.cache/wenda/models)
    llm_threads: int | None = Field(None, ge=1)  # llama.cpp threads (default: all cores)
    llm_max_tokens: int = Field(384, ge=1)
    llm_base_url: str | None = None  # e.g. https://api.deepseek.com/v1, http://127.0.0.1:11434/v1
    llm_model: str | None = None
    llm_api_key: str | None = None
    # server
    api_key: str | None = None  # without a keys file: the bearer token write routes need
    keys_file: Path | None = None  # API keys with per-collection rights (rag.keys; `rag keys add`)
    cors_origins: list[str] = []
    max_upload_bytes: int = Field(5_000_000, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1)  # any other request body (JSON), counted as it arrives
    max_history_turns: int = Field(50, ge=0)  # earlier turns one question may carry
    max_history_chars: int = Field(20_000, ge=0)  # their characters, all together
    # proxies whose X-Forwarded-For is believed: comma-separated IPs or CIDRs, "*" for any;
    # empty (default): the peer address is the client, whatever headers it sends
    trusted_proxies: str = ""
    header_timeout_s: float = Field(10.0, gt=0)  # a connection must send its request headers within this
    # upload jobs (POST /documents): run one at a time; embedding runs ~3-10 chunks/s on 2 cores
    max_job_chunks: int = Field(5_000, ge=1)  # chunks one upload may write (~10-30 min on 2 cores)
    max_queued_jobs: int = Field(16, ge=1)  # uploads waiting their turn (each holds its files in memory)
    job_abandon_s: float = Field(60.0, gt=0)  # a queued job nobody polled this long is dropped unstarted
    rate_limit_per_minute: int | None = Field(None, ge=1)  # requests per client (IP) per minute
    # seconds an idle HTTP connection is kept open: longer than clients keep theirs (httpx 5 s,
    # aiohttp 15 s), so the client always closes first and never reuses one the server just closed
    keep_alive_s: int = Field(75, ge=1)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError("invalid settings: " + "; ".join(_describe(e) for e in exc.errors())
                              ) from None

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.top_k > self.max_top_k:
            raise ValueError(f"{_PREFIX}TOP_K={self.top_k} is above {_PREFIX}MAX_TOP_K={self.max_top_k}")
        if self.backend == "postgres" and not self.database_url:
            raise ValueError(f"{_PREFIX}BACKEND=postgres needs {_PREFIX}DATABASE_URL "
                             "(postgresql://user:password@host:5432/db)")
        return self

    def location(self) -> Location:
        """Where the collections live (``rag.store.collections``)."""
        return Location(self.index_dir, self.database_url if self.backend == "postgres" else None)


    def limits(self) -> Limits:
        """What one file may cost, for ``rag.loaders``."""
        return Limits(self.max_pages, self.max_document_chars, self.max_unpacked_bytes, self.ocr,
                      self.max_ocr_pages)


def _describe(error: Any) -> str:
    if not error["loc"]:  # a model-level check: its message names the variables
        return str(error["msg"]).removeprefix("Value error, ")
    name = _PREFIX + str(error["loc"][0]).upper()
    return f"{name}={error['input']!r}: {error['msg']}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
