"""The seam between the pipeline and where an index lives: ``SearchBackend``.

Everything above the store (``rag.answer.retrieve``, ``rag.qa``, ``rag.ingest``, ``server/``)
talks to an index through these methods and nothing else. Two implementations:

- ``rag.store.index.Index``: one machine. A SQLite docstore is the source of truth; FAISS (dense)
  and bm25s (lexical) are in-memory caches rebuilt from it per generation.
- ``rag.store.postgres.PostgresIndex``: many machines. PostgreSQL holds documents, chunks, a
  pgvector ``vector`` column (HNSW) and BM25 as a ``sparsevec`` whose weights come from term
  statistics kept in the same database; serving processes hold no vectors and are replicas.

Both return the raw cosine and the raw BM25 score per candidate, so the fusion in
``rag.answer.retrieve`` is the same over either. A ``Filter`` is applied inside each search,
before the top-k cut (never on the results afterwards).

Write side: a writer holds ``writing()`` (one writer per collection), reads ``sources()`` to
decide what changed, asks ``known_vectors`` for chunk texts already embedded, then makes one
``commit`` (or ``delete``): a single transaction that bumps the generation. Readers see the old
state or the new one, never a mix; ``refresh`` picks up a commit made by another process.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from rag.loaders import Page
from rag.text.lexical import TermStats
from rag.text.normalize import Normalized

if TYPE_CHECKING:
    from rag.ingest.documents import Document
    from rag.models.embed import Embedder
    from rag.store.filters import DocumentTags, Filter
    from rag.text.chunk import Chunk

__all__ = [
    "Change",
    "DocumentInfo",
    "LoadedState",
    "SearchBackend",
    "Source",
    "StoredDocument",
    "TermStats",
    "text_sha",
]


@dataclass(frozen=True)
class Source:
    """What a writer needs to know of a stored document to decide whether it changed."""

    sha256: str  # of its text
    source_sha256: str  # of the file's bytes ('' for documents given as text)
    tags: tuple[str, ...]


@dataclass
class Change:
    """One commit: documents to (re)write with their chunks and vectors, documents to remove,
    documents whose tags (and file hash) alone changed. Applied in one transaction."""

    added: list[tuple[Document, Normalized, list[Chunk]]] = field(default_factory=list)
    vectors: np.ndarray | None = None  # one row per chunk of ``added``, in order
    removed: list[str] = field(default_factory=list)  # doc ids (updated ones included)
    retagged: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)  # (id, tags, source sha)
    rehashed: list[tuple[str, str]] = field(default_factory=list)  # (source sha, id): no new generation

    def chunks(self) -> list[Chunk]:
        return [c for _, _, cs in self.added for c in cs]

    @property
    def visible(self) -> bool:
        """Whether readers see a difference (so the generation moves)."""
        return bool(self.added or self.removed or self.retagged)


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    path: str
    sha256: str
    chars: int
    chunks: int
    source: str = ""
    title: str = ""
    media_type: str = "text/plain"
    pages: int = 0  # pages or slides; 0 for formats without pages
    tags: tuple[str, ...] = ()
    ingested_at: float = 0.0  # seconds since the epoch


@dataclass(frozen=True)
class StoredDocument:
    """One document as the index keeps it: original text, its normalized form, page table."""

    text: str
    normalized: Normalized
    pages: tuple[Page, ...] = ()
    media_type: str = "text/plain"
    title: str = ""


class LoadedState:
    """What both backends do the same way over their one immutable loaded state (``loaded``,
    swapped whole by ``reload``): pin it (``snapshot``), follow the store (``refresh``), read
    documents through it (``loaded.document(doc_id)``, checked against that state)."""

    loaded: Any

    @property
    def generation(self) -> int:
        return self.loaded.generation  # type: ignore[no-any-return]

    def current_generation(self) -> int:
        raise NotImplementedError

    def reload(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> Self:
        """This index as loaded now, unchanged by later reloads (what one request reads)."""
        return copy.copy(self)  # shares ``loaded``; a reload of ``self`` rebinds only its own

    def refresh(self) -> bool:
        """Reload when another process committed a change; True when it did."""
        if self.current_generation() == self.generation:
            return False
        self.reload()
        return True

    def text(self, doc_id: str) -> str:
        """The original text of a document."""
        return self.loaded.document(doc_id).text  # type: ignore[no-any-return]

    def normalized(self, doc_id: str) -> Normalized:
        return self.loaded.document(doc_id).normalized  # type: ignore[no-any-return]

    def stored(self, doc_id: str) -> StoredDocument:
        """Text, normalized text, page table and media type of a document (as loaded)."""
        return self.loaded.document(doc_id)  # type: ignore[no-any-return]


class SearchBackend(Protocol):
    """An index: its docstore, its searches and its write side (see the module docstring)."""

    embedder: Embedder
    directory: Path  # a local folder of its own (uploads, caches)

    # ---- state -------------------------------------------------------------------------------
    @property
    def generation(self) -> int: ...

    @property
    def chunks(self) -> Mapping[int, Chunk]: ...  # chunk id -> chunk, as loaded

    @property
    def lexicon(self) -> TermStats: ...

    def __len__(self) -> int: ...  # chunks

    def snapshot(self) -> SearchBackend: ...  # this state, unchanged by later reloads

    def refresh(self) -> bool: ...  # reload if another process committed; True when it did

    def reload(self) -> None: ...

    def current_generation(self) -> int: ...  # the store's, not the loaded one

    # ---- documents ---------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]: ...

    def document_tags(self, doc_id: str) -> DocumentTags | None: ...

    def stored(self, doc_id: str) -> StoredDocument: ...

    def text(self, doc_id: str) -> str: ...

    def normalized(self, doc_id: str) -> Normalized: ...

    def stats(self) -> dict[str, Any]: ...

    # ---- searching ---------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, where: Filter | None = None
                     ) -> list[tuple[int, float]]: ...  # (chunk id, cosine), best first

    def lexical_search(self, tokens: Sequence[str], k: int, where: Filter | None = None
                       ) -> list[tuple[int, float]]: ...  # (chunk id, BM25), best first

    def vectors(self, chunk_ids: Sequence[int] | np.ndarray) -> np.ndarray: ...  # stored embeddings, in order

    # ---- writing -----------------------------------------------------------------------------
    def writing(self) -> AbstractContextManager[None]: ...  # the collection's one writer

    def sources(self) -> dict[str, Source]: ...

    def known_vectors(self, text_shas: Sequence[str]) -> dict[str, np.ndarray]: ...

    def commit(self, change: Change) -> None: ...  # one transaction; reloads when visible

    def delete(self, doc_ids: Sequence[str]) -> list[str]: ...  # the ids that existed; reloads


def text_sha(text: str) -> str:
    """The key under which a chunk text's vector is reused (unchanged text: no re-embedding)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
