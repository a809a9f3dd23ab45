"""``PostgresIndex``: one collection in a PostgreSQL database, as a ``SearchBackend``.

The database is the whole index: documents, chunks, vectors (HNSW) and BM25 statistics. A
serving process holds only the collection's generation and counts, plus caches keyed by things
that never change meaning (chunk ids; tokens within one generation). Any number of processes on
any number of machines open the same collection; a commit by one is seen by the others at their
next ``refresh``.

As in ``rag.store.index``, everything read for one generation is one immutable ``Loaded`` that
``reload`` swaps in with one assignment, and ``snapshot`` pins it for a request. The searches run
against the database as it is now (PostgreSQL keeps no old generations to search); what a
snapshot guarantees is that the documents it reads are the texts its chunks point into: a text
rewritten after its generation is refused (``NotFoundError``), as the SQLite index does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import NotFoundError
from rag.models.embed import Embedder
from rag.store.backend import Change, DocumentInfo, LoadedState, Source, StoredDocument
from rag.store.docstore import document_from_row, pages_from_json
from rag.store.filters import DocumentTags, Filter
from rag.store.postgres import search, write
from rag.store.postgres.bm25 import Terms
from rag.store.postgres.chunks import ChunkCache, Chunks
from rag.store.postgres.schema import Pool, create_collection, pool_for, writer_lock

__all__ = ["Loaded", "PostgresIndex"]


@dataclass(frozen=True)
class Loaded:
    """What a ``PostgresIndex`` holds of one generation of its collection."""

    generation: int
    documents: int
    chunks: Chunks
    lexicon: Terms
    document: Callable[[str], StoredDocument]  # doc_id -> what is stored of it, cached


class PostgresIndex(LoadedState):
    """One collection of a PostgreSQL database. Open with ``PostgresIndex.open``."""

    _planned_from: int | None = None  # the generation a writer (``writing``) planned from

    def __init__(self, pool: Pool, collection: str, embedder: Embedder, directory: Path) -> None:
        self.pool = pool
        self.collection = collection
        self.embedder = embedder
        self.directory = directory
        self.cache = ChunkCache()  # shared with snapshots: chunk ids are never reused
        self.loaded = self._empty()

    @classmethod
    def open(cls, url: str, collection: str, embedder: Embedder, directory: Path) -> PostgresIndex:
        """The collection (made if missing); ``IncompatibleIndexError`` if another embedder built
        it. ``directory`` is a local folder of its own (uploads)."""
        pool = pool_for(url)
        with pool.connection() as conn:
            create_collection(conn, collection, embedder.name, embedder.dim, pool.where)
        index = cls(pool, collection, embedder, Path(directory))
        index.directory.mkdir(parents=True, exist_ok=True)
        index.reload()
        return index

    def _empty(self) -> Loaded:
        return Loaded(-1, 0, Chunks(self.pool, self.collection, 0, self.cache),
                      Terms(self.pool, self.collection, 0), partial(self._read_document, -1))

    # ---- state -------------------------------------------------------------------------------
    @property
    def chunks(self) -> Chunks:
        return self.loaded.chunks

    @property
    def lexicon(self) -> Terms:
        return self.loaded.lexicon

    def __len__(self) -> int:
        return len(self.loaded.chunks)

    def current_generation(self) -> int:
        return self._state()[0]

    def reload(self) -> None:
        generation, n_chunks, documents = self._state()
        self.loaded = Loaded(generation, documents, Chunks(self.pool, self.collection, n_chunks, self.cache),
                             Terms(self.pool, self.collection, n_chunks),
                             lru_cache(maxsize=1024)(partial(self._read_document, generation)))

    def _state(self) -> tuple[int, int, int]:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT generation, n_chunks, (SELECT count(*) FROM wenda.documents d"
                " WHERE d.collection = c.name) FROM wenda.collections c WHERE name = %s",
                (self.collection,)).fetchone()
        if row is None:
            raise NotFoundError(f"no collection {self.collection!r} in {self.pool.where}")
        return int(row[0]), int(row[1]), int(row[2])

    # ---- documents ---------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT d.doc_id, d.path, d.sha256, length(d.text), (SELECT count(*) FROM wenda.chunks c"
                " WHERE c.collection = d.collection AND c.doc_id = d.doc_id), d.source, d.title,"
                " d.media_type, d.pages, d.tags, d.ingested_at FROM wenda.documents d"
                ' WHERE d.collection = %s ORDER BY d.doc_id COLLATE "C"', (self.collection,)).fetchall()
        return [DocumentInfo(r[0], r[1], r[2], r[3], r[4], source=r[5], title=r[6], media_type=r[7],
                             pages=len({p.number for p in pages_from_json(r[8])}), tags=tuple(r[9]),
                             ingested_at=r[10]) for r in rows]

    def document_tags(self, doc_id: str) -> DocumentTags | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT source, tags FROM wenda.documents WHERE collection = %s AND"
                               " doc_id = %s", (self.collection, doc_id)).fetchone()
        return DocumentTags(doc_id, row[0], tuple(row[1])) if row else None

    def _read_document(self, generation: int, doc_id: str) -> StoredDocument:
        """Read lazily, so checked against the loaded generation: a text written after it (by
        another writer) is not the one the loaded chunks point into."""
        with self.pool.connection() as conn:
            row = conn.execute("SELECT text, ntext, origin, generation, pages, media_type, title"
                               " FROM wenda.documents WHERE collection = %s AND doc_id = %s",
                               (self.collection, doc_id)).fetchone()
        return document_from_row(doc_id, row, row is not None and row[3] <= generation)

    def stats(self) -> dict[str, Any]:
        loaded = self.loaded
        return {"documents": loaded.documents, "chunks": len(loaded.chunks),
                "embedder": self.embedder.name, "dim": self.embedder.dim,
                "generation": loaded.generation, "directory": str(self.directory),
                "backend": "postgres", "database": self.pool.where, "collection": self.collection}

    # ---- searching ---------------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, where: Filter | None = None
                     ) -> list[tuple[int, float]]:
        """The ``k`` nearest chunks by cosine, among those ``where`` allows."""
        if k <= 0:
            return []
        with self.pool.connection() as conn:
            rows = search.dense(conn, self.collection, self.embedder.dim, vector, k, where)
        self.cache.put(rows)
        return [(int(r[0]), 1.0 - float(r[-1])) for r in rows]

    def lexical_search(self, tokens: Sequence[str], k: int, where: Filter | None = None
                       ) -> list[tuple[int, float]]:
        """The ``k`` best chunks by BM25 (bm25s's scores), among those ``where`` allows; IDF stays
        the collection's: a filter narrows what is searched, not how words weigh."""
        query = self.lexicon.query(tokens)
        if query is None or k <= 0:
            return []
        with self.pool.connection() as conn:
            rows = search.lexical(conn, self.collection, query[0], query[1], k, where)
        self.cache.put(rows)
        return [(int(r[0]), float(r[-1])) for r in rows]

    def vectors(self, chunk_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored embeddings of chunks, one row each, in order (``KeyError`` for unknown ids)."""
        ids = [int(i) for i in chunk_ids]
        if not ids:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        with self.pool.connection() as conn:
            found = dict(conn.execute("SELECT id, embedding FROM wenda.chunks WHERE collection = %s"
                                      " AND id = ANY(%s::int8[])", (self.collection, ids), binary=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"no chunk {missing[0]} in collection {self.collection!r}")
        return np.stack([found[i].to_numpy() for i in ids])

    # ---- writing -----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """The collection's one writer: a session advisory lock, held on a connection of its own
        for the block (released by the server if this process dies)."""
        with self.pool.connection() as conn, writer_lock(conn, self.collection):
            # What this writer plans from. A writer killed while its COMMIT is in flight loses the
            # lock at once, yet its commit lands a moment later: ``commit`` then finds another
            # generation under its row lock and writes nothing, rather than a plan from the old state.
            self._planned_from = self.current_generation()
            try:
                yield
            finally:
                self._planned_from = None

    def sources(self) -> dict[str, Source]:
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT doc_id, sha256, source_sha256, tags FROM wenda.documents"
                                " WHERE collection = %s", (self.collection,)).fetchall()
        return {r[0]: Source(r[1], r[2], tuple(r[3])) for r in rows}

    def known_vectors(self, text_shas: Sequence[str]) -> dict[str, np.ndarray]:
        if not text_shas:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT DISTINCT ON (text_sha) text_sha, embedding FROM wenda.chunks"
                                " WHERE collection = %s AND text_sha = ANY(%s)",
                                (self.collection, list(text_shas)), binary=True).fetchall()
        return {sha: vector.to_numpy() for sha, vector in rows}

    def commit(self, change: Change) -> None:
        """One transaction (``rag.store.postgres.write``); reloads when readers would see a
        difference."""
        with self.pool.connection() as conn:
            left = write.commit(conn, self.collection, change, self.embedder.dim, self._planned_from)
        if left is not None and self._planned_from is not None:
            self._planned_from = left  # the next commit of this writer (copy_index: batches)
        if change.visible:
            self.reload()
        else:
            self.refresh()

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Remove documents by id; returns the ids that existed."""
        with self.pool.connection() as conn:
            have = {r[0] for r in conn.execute("SELECT doc_id FROM wenda.documents WHERE collection = %s"
                                               " AND doc_id = ANY(%s)", (self.collection, list(doc_ids)))}
        gone = list(dict.fromkeys(d for d in doc_ids if d in have))
        if gone:
            self.commit(Change(removed=gone))
        else:
            self.refresh()
        return gone
