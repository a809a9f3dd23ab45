"""BM25 in PostgreSQL with the scores of ``rag.text.lexical.Lexicon`` (bm25s, method "lucene").

bm25s scores a chunk ``d`` for query tokens ``q`` (tokens outside the vocabulary dropped, a token
repeated in the query counted each time) as::

    sum over t in q of  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

The sum splits into a chunk side and a query side: each chunk stores the ``tf / (tf + ...)`` part
per term as a ``sparsevec`` (``bm25``) and the query is a ``sparsevec`` of count × idf, so the
score is an inner product (``-(bm25 <#> query)``). IDF comes from ``terms.df`` and the collection's
chunk count, kept exact at every commit. The chunk side depends on avgdl, which moves as documents
come and go: weights are written with ``weighted_avgdl`` and every chunk is re-weighted in the
commit that takes avgdl more than ``REWEIGHT_TOLERANCE`` away from it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from pgvector import SparseVector

from rag.store.postgres.schema import Pool

__all__ = ["B", "K1", "REWEIGHT_TOLERANCE", "SPARSE_DIM", "Terms", "chunk_weights", "idf",  # noqa: RUF022
           "needs_reweight", "reweight"]

K1, B = 1.2, 0.75  # as Lexicon's bm25s.BM25(k1=1.2, b=0.75)
SPARSE_DIM = 1_000_000_000  # pgvector's largest sparsevec; term ids index into it
# |avgdl - weighted_avgdl| / weighted_avgdl above which a commit re-weights every chunk. Below it
# a score is off by at most ~b * 2% of its tf part (measured on the seeds: see tests/test_postgres).
REWEIGHT_TOLERANCE = 0.02
_CACHED_TOKENS = 100_000  # per generation, then the cache starts over


def idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def chunk_weights(tokens: Sequence[str], ids: Mapping[str, int], avgdl: float) -> SparseVector:
    """The chunk side of BM25: per term, ``tf / (tf + k1 * (1 - b + b * |d| / avgdl))``."""
    if not tokens:
        return SparseVector({}, SPARSE_DIM)
    norm = K1 * (1 - B + B * len(tokens) / avgdl)
    return SparseVector({ids[t]: tf / (tf + norm) for t, tf in Counter(tokens).items()}, SPARSE_DIM)


def needs_reweight(avgdl: float, weighted: float) -> bool:
    return avgdl > 0 and (weighted <= 0 or abs(avgdl - weighted) > REWEIGHT_TOLERANCE * weighted)


def reweight(conn: psycopg.Connection[Any], collection: str, avgdl: float) -> None:
    """Rewrite every chunk's weights with ``avgdl`` (inside the caller's transaction): read in
    batches, written back through a temporary table in one UPDATE."""
    ids = dict(conn.execute("SELECT token, id FROM wenda.terms WHERE collection = %s", (collection,)))
    conn.execute("CREATE TEMP TABLE wenda_reweighted(id bigint, bm25 sparsevec) ON COMMIT DROP")
    with conn.cursor(name="wenda_reweight") as rows:
        rows.execute("SELECT id, tokens FROM wenda.chunks WHERE collection = %s", (collection,))
        while batch := rows.fetchmany(5000):
            with conn.cursor().copy("COPY wenda_reweighted FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "sparsevec"])
                for chunk_id, tokens in batch:
                    copy.write_row((chunk_id, chunk_weights(tokens.split(" ") if tokens else [], ids, avgdl)))
    conn.execute("UPDATE wenda.chunks c SET bm25 = r.bm25 FROM wenda_reweighted r WHERE c.id = r.id")
    conn.execute("DROP TABLE wenda_reweighted")


class Terms:
    """The collection's document frequencies as of one generation (``TermStats``): tokens are
    looked up in the terms table when first asked for, a batch per query, and kept; the
    vocabulary is never loaded whole into a serving process."""

    def __init__(self, pool: Pool, collection: str, size: int) -> None:
        self.size = size  # chunks
        self._pool = pool
        self._collection = collection
        self._known: dict[str, tuple[int, int]] = {}  # token -> (term id, df); (0, 0) when unseen
        self._lock = threading.Lock()

    def fetch(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(term id, df) of those of ``tokens`` the collection has, in one query at most."""
        asked = set(tokens)
        with self._lock:
            known = {t: self._known[t] for t in asked if t in self._known}
        missing = [t for t in asked if t not in known]
        if missing:
            with self._pool.connection() as conn:
                found = {t: (i, df) for t, i, df in conn.execute(
                    "SELECT token, id, df FROM wenda.terms WHERE collection = %s AND token = ANY(%s)",
                    (self._collection, missing))}
            fresh = {t: found.get(t, (0, 0)) for t in missing}
            known.update(fresh)
            with self._lock:
                if len(self._known) > _CACHED_TOKENS:
                    self._known.clear()
                self._known.update(fresh)
        return {t: v for t, v in known.items() if v[1] > 0}

    def prefetch(self, tokens: Sequence[str]) -> None:
        """One query for the tokens the weights will ask about one by one."""
        self.fetch(tokens)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token in self.fetch([token])

    @property
    def unseen_idf(self) -> float:
        """The IDF a word the collection lacks gets: the highest (it is the rarest)."""
        return math.log(1 + (self.size + 0.5) / 0.5)

    def idf(self, token: str) -> float:
        """BM25 inverse document frequency of a token (0 for tokens not in the collection)."""
        known = self.fetch([token]).get(token)
        return idf(known[1], self.size) if known else 0.0

    def query(self, tokens: Sequence[str]) -> tuple[list[int], SparseVector] | None:
        """The query side of BM25 (count × idf per known term) and its term ids; None when no
        token is in the collection."""
        known = self.fetch(tokens)
        counts = Counter(t for t in tokens if t in known)
        if not counts:
            return None
        weights = {known[t][0]: n * idf(known[t][1], self.size) for t, n in counts.items()}
        return sorted(weights), SparseVector(weights, SPARSE_DIM)
