"""Shared fixtures: real files, real FAISS and SQLite; a fake embedder only at the model seam."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from postgres_server import pg_db, pg_url  # noqa: F401 (fixtures: a real PostgreSQL + pgvector)

from evals.load import free_port
from rag.config import Settings
from rag.ingest import ingest
from rag.ingest.documents import load_documents
from rag.store.index import Index
from server.app import create_app

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


class FakeEmbedder:
    """Deterministic bag-of-characters vectors: similar text, similar vector. Counts its calls."""

    name = "fake"
    dim = 64

    def __init__(self) -> None:
        self.passages_embedded = 0

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for ch in text:
            v[int(hashlib.md5(ch.encode()).hexdigest(), 16) % self.dim] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-9)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), "f4")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passages_embedded += len(texts)
        return self.embed_queries(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    """A writable copy of seeds/."""
    target = tmp_path / "docs"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def seed_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Index:
    """An index over the seeds with the fake embedder (fast; real FAISS, BM25, SQLite)."""
    index = Index.open(tmp_path / "index", fake_embedder)
    ingest(index, load_documents([SEEDS]))
    return index


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """An index over the seeds with the real bundled default embedder (integration tier)."""
    from rag.models.embed import load_embedder

    index = Index.open(tmp_path_factory.mktemp("real") / "index", load_embedder("e5"))
    ingest(index, load_documents([SEEDS]))
    return index


@pytest.fixture
def make_client(seed_index: Index) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)``: the app around ``seed_index``, started (lifespan run)."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(**{"index_dir": seed_index.directory, "generator": "extractive", **overrides})
        client = TestClient(create_app(settings, index=seed_index))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port (a real socket, unlike
    TestClient); yields its base URL once startup (the lifespan) is done. ``options`` go to
    ``uvicorn.Config`` (``rag serve``'s are ``server.app.uvicorn_options(settings)``)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
