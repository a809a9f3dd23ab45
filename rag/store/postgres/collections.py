"""Collections in a PostgreSQL database: list, check, drop (``PostgresIndex.open`` creates one).

The PostgreSQL side of ``rag.store.collections``: there a collection is a folder, here it is a row
of ``wenda.collections`` (with its documents, chunks, terms and HNSW index). Names are checked by
``rag.store.collections.check_name``; whether ``default`` may be dropped is the caller's rule.
"""

from __future__ import annotations

from rag.errors import NotFoundError
from rag.store.collections import check_name
from rag.store.postgres import schema

__all__ = ["drop", "exists", "list_collections"]


def list_collections(url: str) -> list[str]:
    """The names of the collections the database holds, sorted."""
    with schema.pool_for(url).connection() as conn:
        return [r[0] for r in conn.execute('SELECT name FROM wenda.collections ORDER BY name COLLATE "C"')]


def exists(url: str, name: str) -> bool:
    with schema.pool_for(url).connection() as conn:
        return conn.execute("SELECT 1 FROM wenda.collections WHERE name = %s", (name,)).fetchone() is not None


def drop(url: str, name: str) -> None:
    """Delete a collection and everything in it, in one transaction, once its writer (if any)
    is done; ``NotFoundError`` if there is none."""
    pool = schema.pool_for(url)
    with pool.connection() as conn, schema.writer_lock(conn, check_name(name)):
        dropped = schema.drop_collection(conn, name)
    if not dropped:
        raise NotFoundError(f"no collection {name!r}")
