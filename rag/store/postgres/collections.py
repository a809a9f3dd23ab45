"""Collections in a PostgreSQL database: list, check, create, drop.

The PostgreSQL side of ``rag.store.collections``: there a collection is a folder, here it is a row
of ``wenda.collections`` (with its documents, chunks, terms and HNSW index). Names are checked by
``rag.store.collections.check_name``; whether ``default`` may be dropped is the caller's rule.
"""

from __future__ import annotations

from pathlib import Path

from rag.errors import InputError, NotFoundError
from rag.models.embed import Embedder
from rag.store.collections import DEFAULT, check_name
from rag.store.postgres import schema
from rag.store.postgres.index import PostgresIndex

__all__ = ["create", "drop", "exists", "list_collections"]


def list_collections(url: str) -> list[str]:
    """The names of the collections the database holds, sorted."""
    with schema.pool_for(url).connection() as conn:
        return [r[0] for r in conn.execute('SELECT name FROM wenda.collections ORDER BY name COLLATE "C"')]


def exists(url: str, name: str) -> bool:
    with schema.pool_for(url).connection() as conn:
        return conn.execute("SELECT 1 FROM wenda.collections WHERE name = %s", (name,)).fetchone() is not None


def create(url: str, name: str, embedder: Embedder, directory: Path) -> PostgresIndex:
    """A new, empty collection (``InputError`` if it exists already, ``default`` aside)."""
    if exists(url, check_name(name)) and name != DEFAULT:
        raise InputError(f"collection {name!r} exists already")
    return PostgresIndex.open(url, name, embedder, directory)


def drop(url: str, name: str) -> None:
    """Delete a collection and everything in it, in one transaction, once its writer (if any)
    is done; ``NotFoundError`` if there is none."""
    pool = schema.pool_for(url)
    with pool.connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (schema.LOCK_SPACE, check_name(name)))
        try:
            dropped = schema.drop_collection(conn, name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (schema.LOCK_SPACE, name))
    if not dropped:
        raise NotFoundError(f"no collection {name!r}")
