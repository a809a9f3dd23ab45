"""``PostgresIndex.chunks``: chunk id -> ``Chunk``, read from the database and cached.

A serving process holds no copy of the collection's chunks; it keeps those it has read. Chunk ids
are never reused, so a cached chunk never goes stale (a deleted one just stops being found by the
searches). The searches return the chunk columns with their ids and put them in the cache, so
reading ``index.chunks[i]`` for a hit costs no query.
"""

from __future__ import annotations

import threading
from collections.abc import ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from typing import Any

import numpy as np

from rag.store.postgres.schema import Pool
from rag.text.chunk import Chunk

__all__ = ["COLUMNS", "ChunkCache", "Chunks", "chunk_of"]

COLUMNS = "c.id, c.doc_id, c.ordinal, c.text, c.ostart, c.oend, c.nstart, c.nend"


def chunk_of(row: Sequence[Any]) -> Chunk:
    """The chunk of a row that starts with ``COLUMNS``."""
    return Chunk(row[1], row[2], row[3], row[4], row[5], row[6], row[7])


class ChunkCache:
    """Chunks by id, shared by an index and its snapshots; the oldest go first past ``size``."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._chunks: dict[int, Chunk] = {}
        self._lock = threading.Lock()

    def get(self, chunk_id: int) -> Chunk | None:
        return self._chunks.get(chunk_id)

    def put(self, rows: Iterable[Sequence[Any]]) -> None:
        """Cache the chunks of rows that start with ``COLUMNS``."""
        fresh = {int(r[0]): chunk_of(r) for r in rows}
        with self._lock:
            self._chunks.update(fresh)
            while len(self._chunks) > self.size:
                del self._chunks[next(iter(self._chunks))]


class Chunks(Mapping[int, Chunk]):
    """The chunks of one collection; ``len`` is the count at the loaded generation."""

    def __init__(self, pool: Pool, collection: str, size: int, cache: ChunkCache) -> None:
        self._pool = pool
        self._collection = collection
        self._size = size
        self._cache = cache

    def __getitem__(self, chunk_id: int) -> Chunk:
        if not isinstance(chunk_id, int | np.integer):
            raise KeyError(chunk_id)
        chunk = self._cache.get(int(chunk_id))
        if chunk is None:
            with self._pool.connection() as conn:
                row = conn.execute(f"SELECT {COLUMNS} FROM wenda.chunks c WHERE c.id = %s AND"
                                   " c.collection = %s", (int(chunk_id), self._collection)).fetchone()
            if row is None:
                raise KeyError(chunk_id)
            self._cache.put([row])
            chunk = chunk_of(row)
        return chunk

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[int]:
        with self._pool.connection() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM wenda.chunks WHERE collection = %s ORDER BY id", (self._collection,))]
        return iter(ids)

    def _all(self) -> dict[int, Chunk]:
        """Every chunk in one query (not one per id, as ``Mapping`` would), left out of the cache."""
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM wenda.chunks c WHERE c.collection = %s"
                                " ORDER BY c.id", (self._collection,)).fetchall()
        return {int(r[0]): chunk_of(r) for r in rows}

    def items(self) -> ItemsView[int, Chunk]:
        return self._all().items()

    def values(self) -> ValuesView[Chunk]:
        return self._all().values()
