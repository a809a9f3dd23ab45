"""The two searches as SQL: dense over the collection's HNSW index, lexical over BM25 weights.

A ``Filter`` is part of each query's WHERE, so the top-k cut comes after it. The documents' side
of a filter (path prefix, tags) is an ``EXISTS`` on the documents table: the planner then picks,
from its statistics, either the HNSW scan checking each chunk's document as it goes (broad
filters) or an exact scan of the allowed documents' chunks (narrow ones).

The HNSW scan is iterative (``hnsw.iterative_scan = relaxed_order``, pgvector >= 0.8, set on every
connection of the pool): when the filter rejects candidates it keeps walking the graph instead of
returning fewer than k. Relaxed
order means the index may return them slightly out of order, so an outer query sorts the k rows
again. It stops after ``hnsw.max_scan_tuples`` (20,000 by default); if fewer than k come back
under a filter, the search runs again exact over the allowed chunks.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import psycopg
from pgvector import SparseVector
from psycopg import sql

from rag.store.filters import Filter
from rag.store.postgres.chunks import COLUMNS
from rag.store.postgres.schema import EF_SEARCH

__all__ = ["dense", "dense_sql", "filter_sql", "lexical", "lexical_sql"]


def filter_sql(where: Filter | None) -> tuple[str, dict[str, Any]]:
    """The WHERE conditions on chunks ``c`` for ``where`` (``''`` when it allows everything)."""
    if not where:
        return "", {}
    parts: list[str] = []
    params: dict[str, Any] = {}
    if where.doc_ids:
        parts.append("c.doc_id = ANY(%(f_ids)s::text[])")
        params["f_ids"] = list(where.doc_ids)
    doc: list[str] = []
    if where.path_prefix:
        doc.append("(starts_with(d.doc_id, %(f_prefix)s) OR starts_with(d.source, %(f_prefix)s))")
        params["f_prefix"] = where.path_prefix
    if where.tags_any:
        doc.append("d.tags && %(f_any)s::text[]")
        params["f_any"] = list(where.tags_any)
    if where.tags_all:
        doc.append("d.tags @> %(f_all)s::text[]")
        params["f_all"] = list(where.tags_all)
    if doc:
        parts.append("EXISTS (SELECT 1 FROM wenda.documents d WHERE d.collection = c.collection"
                     f" AND d.doc_id = c.doc_id AND {' AND '.join(doc)})")
    return "".join(f" AND {p}" for p in parts), params


def dense_sql(collection: str, dim: int, vector: np.ndarray, k: int, where: Filter | None = None,
              exact: bool = False) -> tuple[sql.Composed, dict[str, Any]]:
    """The k nearest chunks by cosine distance; ``exact`` orders by an expression the HNSW index
    does not cover, so every allowed chunk is scored."""
    conditions, params = filter_sql(where)
    distance = ("c.embedding <=> %(q)s::vector" if exact
                else "c.embedding::vector({dim}) <=> %(q)s::vector({dim})")
    query = sql.SQL(
        "SELECT * FROM (SELECT " + COLUMNS + ", " + distance + " AS distance FROM wenda.chunks c"
        " WHERE c.collection = {name}" + conditions.replace("{", "{{").replace("}", "}}") +
        " ORDER BY " + distance + " LIMIT %(k)s) s ORDER BY distance, id"
    ).format(name=sql.Literal(collection), dim=sql.SQL(str(int(dim))))
    return query, {**params, "q": np.asarray(vector, dtype=np.float32), "k": int(k)}


def dense(conn: psycopg.Connection[Any], collection: str, dim: int, vector: np.ndarray, k: int,
          where: Filter | None) -> list[tuple[Any, ...]]:
    """Rows of ``chunks.COLUMNS`` + cosine distance, nearest first."""
    scope: AbstractContextManager[Any] = conn.transaction() if k > EF_SEARCH else nullcontext()
    with scope:
        if k > EF_SEARCH:  # the session's ef_search, raised for this query (pgvector's limit: 1,000)
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(1000, k)),))
        rows = conn.execute(*dense_sql(collection, dim, vector, k, where)).fetchall()
        if where and len(rows) < k:  # past max_scan_tuples: a very narrow filter, scored exactly
            rows = conn.execute(*dense_sql(collection, dim, vector, k, where, exact=True)).fetchall()
    return rows


def lexical_sql(collection: str, terms: list[int], query: SparseVector, k: int,
                where: Filter | None = None) -> tuple[str, dict[str, Any]]:
    """The k best chunks by BM25: those holding a query term (a chunk without one scores 0),
    ranked by the inner product of their weights with the query's."""
    conditions, params = filter_sql(where)
    return ("SELECT " + COLUMNS + ", -(c.bm25 <#> %(q)s) AS score FROM wenda.chunks c"
            " WHERE c.collection = %(name)s AND c.terms && %(terms)s::int4[]" + conditions +
            " ORDER BY c.bm25 <#> %(q)s, c.id LIMIT %(k)s",
            {**params, "name": collection, "terms": terms, "q": query, "k": int(k)})


def lexical(conn: psycopg.Connection[Any], collection: str, terms: list[int], query: SparseVector,
            k: int, where: Filter | None) -> list[tuple[Any, ...]]:
    """Rows of ``chunks.COLUMNS`` + BM25 score, best first."""
    return conn.execute(*lexical_sql(collection, terms, query, k, where)).fetchall()
