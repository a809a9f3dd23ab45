"""The PostgreSQL tables that hold every collection, and the pooled connections to them.

One database holds any number of collections, all in the ``wenda`` schema, every row keyed by its
collection's name: ``collections`` (embedder, generation, BM25 totals), ``documents``, ``chunks``
(text, offsets, tokens, the embedding, BM25 weights) and ``terms`` (each token's id and document
frequency). Chunk and term ids come from identity columns and are never reused, so anything cached
by id stays true.

Dimensions: ``chunks.embedding`` is a ``vector`` without a dimension, so collections made by
embedders of any dimension share the table; pgvector's HNSW needs one dimension, so each collection
gets its own partial expression index, ``((embedding::vector(dim))) WHERE collection = name``.
That also gives each collection its own graph: a small collection is never a narrow filter over a
big one's. The dense query orders by the same expression and names the collection as a literal, so
the planner can prove the partial index applies (a bound parameter would not). HNSW takes at most
2,000 dimensions; e5-small has 384.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pgvector.psycopg.sparsevec import register_sparsevec_info
from pgvector.psycopg.vector import register_vector_info
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types import TypeInfo

from rag.errors import IncompatibleIndexError, IndexStateError

__all__ = ["EF_SEARCH", "INDEXES", "LOCK_SPACE", "SCHEMA_VERSION", "Pool", "close_pools",
           "create_collection", "describe", "drop_collection", "hnsw_index", "pool_for", "writer_lock"]

SCHEMA_VERSION = 1
LOCK_SPACE = 0x77656E64  # 'wend': first key of wenda's advisory locks (the second: the collection)
_IDLE = 8  # connections kept open per database
# Set once per connection, for the dense search (rag.store.postgres.search): iterative HNSW scans,
# so a filter never cuts the k results short; per session rather than SET LOCAL per query, which
# would cost a transaction (two more round trips, 0.25 of 0.85 ms on the seeds) for each search.
# pgvector's default is 40; a larger k raises it for its query. Measured at 1M synthetic 384-d
# chunks (evals/pgscale.py, m=16, ef_construction=64): recall@10 vs exact 0.889 at 40, 0.928 at
# 64, 0.955 at 100, 0.984 at 200 (p50 3.2 -> 4.3 ms); 200 is the first measured value above 0.97.
EF_SEARCH = 200
_SESSION = f"SET hnsw.iterative_scan = relaxed_order; SET hnsw.ef_search = {EF_SEARCH}"

INDEXES = ("documents_tags", "chunks_doc", "chunks_sha", "chunks_terms")  # _SCHEMA's, all collections'
_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS wenda;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS wenda.collections(
    id integer GENERATED ALWAYS AS IDENTITY UNIQUE, name text PRIMARY KEY,
    embedder text NOT NULL, dim integer NOT NULL, schema_version integer NOT NULL,
    generation bigint NOT NULL DEFAULT 0, n_chunks bigint NOT NULL DEFAULT 0,
    sum_dl bigint NOT NULL DEFAULT 0, weighted_avgdl double precision NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS wenda.documents(
    collection text NOT NULL REFERENCES wenda.collections(name), doc_id text NOT NULL,
    path text NOT NULL, sha256 text NOT NULL, text text NOT NULL, ntext text NOT NULL,
    origin bytea NOT NULL, ingested_at double precision NOT NULL, source text NOT NULL,
    title text NOT NULL, media_type text NOT NULL, pages text NOT NULL,
    source_sha256 text NOT NULL, tags text[] NOT NULL,
    generation bigint NOT NULL,  -- the one that wrote this text (what "as loaded" checks)
    PRIMARY KEY (collection, doc_id));
CREATE INDEX IF NOT EXISTS documents_tags ON wenda.documents USING gin (tags);
CREATE TABLE IF NOT EXISTS wenda.chunks(
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection text NOT NULL,
    doc_id text NOT NULL, ordinal integer NOT NULL, text text NOT NULL,
    ostart integer NOT NULL, oend integer NOT NULL, nstart integer NOT NULL, nend integer NOT NULL,
    tokens text NOT NULL, text_sha text NOT NULL, embedding vector NOT NULL,
    bm25 sparsevec NOT NULL, terms integer[] NOT NULL,
    FOREIGN KEY (collection, doc_id) REFERENCES wenda.documents(collection, doc_id));
CREATE INDEX IF NOT EXISTS chunks_doc ON wenda.chunks(collection, doc_id);
CREATE INDEX IF NOT EXISTS chunks_sha ON wenda.chunks(collection, text_sha);
-- term ids are unique across collections, so one index serves them all
CREATE INDEX IF NOT EXISTS chunks_terms ON wenda.chunks USING gin (terms);
CREATE TABLE IF NOT EXISTS wenda.terms(
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection text NOT NULL,
    token text NOT NULL, df integer NOT NULL, UNIQUE (collection, token));
"""


def describe(url: str) -> str:
    """The database as messages name it: name, host and user, never the password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unreadable database URL)"
    host = str(info.get("host") or "localhost") + (f":{info['port']}" if info.get("port") else "")
    user = f" as {info['user']}" if info.get("user") else ""
    return f"{info.get('dbname') or info.get('user') or 'postgres'!r} on {host}{user}"


class Pool:
    """Open connections to one database, reused: a new PostgreSQL connection starts a server
    process (4.7 ms over a Unix socket here), more than a search costs. Connections are in
    autocommit; a caller that writes opens ``conn.transaction()``. Any psycopg error leaves as an
    ``IndexStateError`` naming the database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = describe(url)
        self.pid = os.getpid()  # a forked child must not share its parent's sockets
        self._password = str(_safe_dict(url).get("password") or "")
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._types: list[TypeInfo] = []

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._take()
        try:
            yield conn
        except psycopg.Error as exc:
            raise IndexStateError(f"PostgreSQL database {self.where}: {self._clean(exc)}") from exc
        finally:
            self._give(conn)

    def _take(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            # prepare_threshold=None: every query planned with its values (the partial indexes
            # and a filter's selectivity depend on them), and fine behind pgbouncer
            conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=None, connect_timeout=10)
        except psycopg.Error as exc:
            raise IndexStateError(f"cannot connect to the PostgreSQL database {self.where}: "
                                  f"{self._clean(exc)}") from exc
        try:
            conn.execute(_SESSION)
        except psycopg.Error as exc:
            conn.close()
            raise IndexStateError(f"PostgreSQL database {self.where}: {self._clean(exc)}") from exc
        _register(conn, self._types)
        return conn

    def _give(self, conn: psycopg.Connection[Any]) -> None:
        healthy = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and len(self._idle) < _IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _clean(self, exc: BaseException) -> str:
        text = str(exc).strip()
        return text.replace(self._password, "***") if self._password else text

    def ensure_schema(self) -> None:
        """Create the tables if missing (serialized: concurrent ``CREATE ... IF NOT EXISTS`` can
        still collide), then learn pgvector's type ids for every later connection."""
        with self.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_SPACE,))
                conn.execute(_SCHEMA)
            types = [TypeInfo.fetch(conn, name) for name in ("vector", "sparsevec")]
            self._types = [t for t in types if t is not None]
            _register(conn, self._types)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _register(conn: psycopg.Connection[Any], types: list[TypeInfo]) -> None:
    """pgvector's adapters (numpy arrays in and out as ``vector``, ``SparseVector`` as ``sparsevec``)
    from type ids learned once, not looked up again on every new connection."""
    for info in types:
        (register_sparsevec_info if info.name == "sparsevec" else register_vector_info)(conn, info)


def _safe_dict(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        return {}


_POOLS: dict[str, Pool] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(url: str) -> Pool:
    """The process's pool for a database (made, and the schema checked, on first use)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(url)
        if pool is None or pool.pid != os.getpid():
            pool = Pool(url)
            pool.ensure_schema()
            _POOLS[url] = pool
        return pool


def close_pools(url: str | None = None) -> None:
    """Close the idle connections to ``url`` (every database when None) and forget its pool."""
    with _POOLS_LOCK:
        pools = [p for u, p in _POOLS.items() if url is None or u == url]
        for pool in pools:
            _POOLS.pop(pool.url, None)
    for pool in pools:
        pool.close()


def hnsw_index(collection_id: int) -> str:
    """The name of a collection's HNSW index (in the ``wenda`` schema)."""
    return f"chunks_hnsw_{collection_id}"


def _hnsw_name(collection_id: int) -> sql.Identifier:
    return sql.Identifier(hnsw_index(collection_id))


def create_collection(conn: psycopg.Connection[Any], name: str, embedder: str, dim: int, where: str) -> None:
    """Make the collection's row and HNSW index unless it exists; refuse one made by another
    embedder (``IncompatibleIndexError``). Concurrent creators: the second waits on the row."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO wenda.collections(name, embedder, dim, schema_version) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (name) DO NOTHING RETURNING id", (name, embedder, dim, SCHEMA_VERSION)).fetchone()
        if row is not None:
            conn.execute(sql.SQL(
                "CREATE INDEX {index} ON wenda.chunks USING hnsw ((embedding::vector({dim}))"
                " vector_cosine_ops) WHERE collection = {name}").format(
                index=_hnsw_name(row[0]), dim=sql.SQL(str(int(dim))), name=sql.Literal(name)))
            return
    have = conn.execute("SELECT embedder, dim, schema_version FROM wenda.collections WHERE name = %s",
                        (name,)).fetchone()
    assert have is not None  # rows are deleted only by drop, under the writer lock
    if have[2] != SCHEMA_VERSION:
        raise IncompatibleIndexError(
            f"collection {name!r} in {where} was made by schema version {have[2]}, this wenda reads"
            f" {SCHEMA_VERSION}: rebuild it with `rag ingest --rebuild`")
    if (have[0], have[1]) != (embedder, dim):
        raise IncompatibleIndexError(
            f"collection {name!r} in {where} was built with embedder {have[0]!r} ({have[1]}-d), not"
            f" {embedder!r} ({dim}-d): set RAG_EMBEDDER={have[0]} or rebuild with `rag ingest --rebuild`")


def drop_collection(conn: psycopg.Connection[Any], name: str) -> bool:
    """Delete a collection's rows and its HNSW index in one transaction; False if it did not exist."""
    with conn.transaction():
        row = conn.execute("SELECT id FROM wenda.collections WHERE name = %s FOR UPDATE", (name,)).fetchone()
        if row is None:
            return False
        for table in ("chunks", "documents", "terms"):
            conn.execute(sql.SQL("DELETE FROM wenda.{} WHERE collection = %s").format(sql.Identifier(table)),
                         (name,))
        conn.execute("DELETE FROM wenda.collections WHERE name = %s", (name,))
        conn.execute(sql.SQL("DROP INDEX IF EXISTS wenda.{}").format(_hnsw_name(row[0])))
    return True


@contextmanager
def writer_lock(conn: psycopg.Connection[Any], collection: str) -> Iterator[None]:
    """The collection's one writer: a session advisory lock held on ``conn`` for the block
    (the server releases it if the session dies with its process)."""
    conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_SPACE, collection))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_SPACE, collection))
