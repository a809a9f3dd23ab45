"""Integrity check of a collection in PostgreSQL: does everything derived from its documents agree?

In PostgreSQL the derived state lives beside the documents, kept exact by each commit rather than
rebuilt: the collection row's counts, the terms' document frequencies, each chunk's term ids and
BM25 weights, the indexes. ``check(index)`` recomputes them in one REPEATABLE READ, READ ONLY
transaction (one snapshot: a commit meanwhile changes nothing it reads) and returns the problems
found (an empty list means healthy):

- generation: the loaded index is at the database's generation (else "reload it", as the SQLite
  doctor says, so ``rag.store.checks.settled`` retries); no document is newer than it;
- counts: ``n_chunks`` and ``sum_dl`` of the collection row are what its chunks hold;
- terms: every ``terms.df`` is the number of chunks holding the token (the first few mismatches
  named), and every chunk's ``terms`` array holds its tokens' ids;
- orphans: no chunk without its document; a document with searchable text has chunks;
- vectors: every embedding has the collection's dimension and unit norm;
- indexes: the collection's HNSW index and the shared ones (GIN, B-tree) exist and are valid;
- offsets: the SQLite doctor's checks, shared (``rag.store.checks.check_document``);
- BM25: the avgdl the weights were written with is within ``REWEIGHT_TOLERANCE`` of the chunks'
  avgdl, and a sample of chunks carries exactly the weights ``bm25.chunk_weights`` gives with it.

``diagnose`` is ``rag doctor`` with ``RAG_BACKEND=postgres``: it reads the embedder's name and
dimension from the collection row (no model is loaded) and creates nothing, not even the tables.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from rag.errors import RagError
from rag.store.checks import DoctorReport, StoredEmbedder, check_document, missing_sources, settled, stale
from rag.store.postgres import bm25
from rag.store.postgres.index import Loaded, PostgresIndex
from rag.store.postgres.schema import INDEXES, SCHEMA_VERSION, Pool, describe, hnsw_index, pool_for

__all__ = ["check", "diagnose"]

WEIGHT_SAMPLE = 500  # chunks whose BM25 weights are recomputed per check (evenly spaced)
SHOWN = 5  # examples named per problem

_COUNTS = """
SELECT count(*), coalesce(sum(cardinality(string_to_array(tokens, ' '))), 0),
    (SELECT count(*) FROM wenda.documents WHERE collection = %(c)s),
    (SELECT array_agg(doc_id) FROM wenda.documents WHERE collection = %(c)s AND generation > %(g)s)
FROM wenda.chunks WHERE collection = %(c)s"""
_DF = """
WITH counted AS (
    SELECT u.token, count(*) AS df FROM wenda.chunks c,
        LATERAL (SELECT DISTINCT unnest(string_to_array(c.tokens, ' ')) AS token) u
    WHERE c.collection = %(c)s GROUP BY u.token),
recorded AS (SELECT token, df FROM wenda.terms WHERE collection = %(c)s)
SELECT coalesce(r.token, k.token) AS token, r.df, coalesce(k.df, 0), count(*) OVER ()
FROM recorded r FULL JOIN counted k ON k.token = r.token
WHERE r.token IS NULL OR r.df <> coalesce(k.df, 0) ORDER BY 1 LIMIT %(n)s"""
_TERM_IDS = """
SELECT c.id, count(*) OVER () FROM wenda.chunks c WHERE c.collection = %(c)s AND c.terms <> coalesce(
    (SELECT array_agg(t.id ORDER BY t.id) FROM wenda.terms t
     WHERE t.collection = c.collection AND t.token = ANY(string_to_array(c.tokens, ' '))), '{}')
ORDER BY c.id LIMIT %(n)s"""
_ORPHANS = """
SELECT doc_id, count(*) OVER () FROM (SELECT DISTINCT doc_id FROM wenda.chunks c
    WHERE c.collection = %(c)s AND NOT EXISTS (SELECT 1 FROM wenda.documents d
    WHERE d.collection = c.collection AND d.doc_id = c.doc_id)) o ORDER BY 1 LIMIT %(n)s"""
_VECTORS = """
SELECT count(*) FILTER (WHERE vector_dims(embedding) <> %(d)s),
    (array_agg(id ORDER BY id) FILTER (WHERE vector_dims(embedding) <> %(d)s))[1:%(n)s],
    count(*) FILTER (WHERE vector_dims(embedding) = %(d)s AND abs(vector_norm(embedding) - 1) > 1e-3),
    (array_agg(id ORDER BY id) FILTER (WHERE vector_dims(embedding) = %(d)s
                                       AND abs(vector_norm(embedding) - 1) > 1e-3))[1:%(n)s]
FROM wenda.chunks WHERE collection = %(c)s"""
_DOCUMENTS = """
SELECT d.doc_id, d.sha256, d.text, d.ntext, d.origin, coalesce((
    SELECT json_agg(json_build_array(c.id, c.doc_id, c.ordinal, c.text, c.ostart, c.oend, c.nstart,
                                     c.nend) ORDER BY c.ordinal, c.id)
    FROM wenda.chunks c WHERE c.collection = d.collection AND c.doc_id = d.doc_id), '[]')
FROM wenda.documents d WHERE d.collection = %s ORDER BY d.doc_id"""


def check(index: PostgresIndex) -> list[str]:
    """Problems with ``index``'s collection (see the module docstring); ``[]`` when consistent."""
    problems: list[str] = []
    loaded = index.loaded  # one state throughout, even if the index reloads meanwhile
    with index.pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _check(index, loaded, conn, problems)
    return problems


def _check(index: PostgresIndex, loaded: Loaded, conn: psycopg.Connection[Any], problems: list[str]) -> None:
    name = index.collection
    row = conn.execute("SELECT id, dim, generation, n_chunks, sum_dl, weighted_avgdl FROM wenda.collections"
                       " WHERE name = %s", (name,)).fetchone()
    if row is None:
        problems.append(f"no collection {name!r} in {index.pool.where}")
        return
    collection_id, dim, generation, n_chunks, sum_dl, weighted = row
    if generation != loaded.generation:
        problems.append(stale(loaded.generation, generation, "database"))
        return  # everything below would compare two different states
    if dim != index.embedder.dim:
        problems.append(f"the collection's dimension is {dim}, its embedder's {index.embedder.dim}")
    args = {"c": name, "d": dim, "n": SHOWN, "g": generation}
    chunks, dl, documents, newer = conn.execute(_COUNTS, args).fetchone() or (0, 0, 0, [])
    if (chunks, dl) != (n_chunks, sum_dl):
        problems.append(f"the collection row counts {n_chunks} chunks of {sum_dl} tokens, the chunks"
                        f" table holds {chunks} of {dl}")
    if (len(loaded.chunks), loaded.documents) != (chunks, documents):
        problems.append(f"the loaded index counts {len(loaded.chunks)} chunks and {loaded.documents}"
                        f" documents, the database {chunks} and {documents}")
    if newer:
        problems.append(f"documents written after generation {generation}: {sorted(newer)[:SHOWN]}")
    _check_terms(conn, args, problems)
    orphans = conn.execute(_ORPHANS, args).fetchall()
    if orphans:
        problems.append(f"chunks of {orphans[0][1]} documents not in the database:"
                        f" {[r[0] for r in orphans]}")
    n_dim, bad_dim, n_norm, bad_norm = conn.execute(_VECTORS, args).fetchone() or (0, [], 0, [])
    if n_dim:
        problems.append(f"{n_dim} embeddings do not have the collection's dimension {dim} (chunk ids"
                        f" {bad_dim})")
    if n_norm:
        problems.append(f"{n_norm} embeddings are not unit vectors (chunk ids {bad_norm})")
    _check_indexes(conn, collection_id, dim, problems)
    ids = _check_documents(index, conn, problems)
    _check_weights(conn, name, ids, (n_chunks, sum_dl, weighted), problems)


def _check_terms(conn: psycopg.Connection[Any], args: dict[str, Any], problems: list[str]) -> None:
    wrong = conn.execute(_DF, args).fetchall()
    if wrong:
        shown = [f"{t!r} ({'no term row' if have is None else f'recorded {have}'}, counted {want})"
                 for t, have, want, _ in wrong]
        problems.append(f"terms.df disagrees with the chunks' tokens for {wrong[0][3]} tokens: "
                        + ", ".join(shown))
    wrong = conn.execute(_TERM_IDS, args).fetchall()
    if wrong:
        problems.append(f"{wrong[0][1]} chunks' term ids are not their tokens' (chunk ids"
                        f" {[r[0] for r in wrong]})")


def _check_indexes(conn: psycopg.Connection[Any], collection_id: int, dim: int, problems: list[str]) -> None:
    """The collection's HNSW index (on ``vector(dim)``) and the shared ones exist and are valid:
    an interrupted ``CREATE INDEX CONCURRENTLY`` or ``REINDEX`` leaves an invalid one behind."""
    hnsw = hnsw_index(collection_id)
    found = {r[0]: r[1:] for r in conn.execute(
        "SELECT c.relname, i.indisvalid AND i.indisready, pg_get_indexdef(c.oid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'wenda' AND c.relname = ANY(%s)", ([hnsw, *INDEXES],))}
    for name in (hnsw, *INDEXES):
        if name not in found:
            problems.append(f"index wenda.{name} is missing"
                            + (" (the collection's HNSW index: dense search scans every chunk)"
                               if name == hnsw else ""))
        elif not found[name][0]:
            problems.append(f"index wenda.{name} is not valid: REINDEX INDEX wenda.{name}")
    definition = found.get(hnsw, (True, ""))[1]
    if definition and not ("USING hnsw" in definition and f"::vector({dim})" in definition):
        problems.append(f"index wenda.{hnsw} is not an HNSW index on {dim}-d vectors: {definition}")


def _check_documents(index: PostgresIndex, conn: psycopg.Connection[Any], problems: list[str]) -> list[int]:
    """Each document and its chunks (``check_document``) and the serving cache against them,
    streamed; returns every chunk id of a document."""
    ids: list[int] = []
    with conn.cursor(name="wenda_doctor") as rows:
        rows.execute(_DOCUMENTS, (index.collection,))
        for doc_id, sha, text, ntext, origin, chunks in rows:
            check_document(doc_id, sha, text, ntext, bytes(origin), chunks, problems)
            for c in chunks:
                ids.append(c[0])
                cached = index.cache.get(c[0])
                if cached is not None and (cached.doc_id, cached.ordinal, cached.text, cached.start,
                                           cached.end, cached.nstart, cached.nend) != tuple(c[1:8]):
                    problems.append(f"chunk {c[0]} in memory differs from the database")
    return sorted(ids)


def _check_weights(conn: psycopg.Connection[Any], collection: str, ids: list[int],
                   totals: tuple[int, int, float], problems: list[str]) -> None:
    """The avgdl the weights were written with is close enough to the chunks' (a commit that moved
    it further re-weights every chunk), and a sample of chunks holds the weights it gives."""
    n_chunks, sum_dl, weighted = totals
    avgdl = sum_dl / n_chunks if n_chunks else 0.0
    if bm25.needs_reweight(avgdl, weighted):
        problems.append(f"BM25 weights were written with avgdl {weighted:.3f}, the chunks' avgdl is"
                        f" {avgdl:.3f}: more than {bm25.REWEIGHT_TOLERANCE:.0%} apart")
        return
    if not ids:
        return
    sample = [ids[i] for i in np.linspace(0, len(ids) - 1, min(WEIGHT_SAMPLE, len(ids))).astype(int)]
    rows = conn.execute("SELECT id, tokens, bm25 FROM wenda.chunks WHERE collection = %s"
                        " AND id = ANY(%s::int8[])", (collection, sample)).fetchall()
    tokens = {r[0]: r[1].split(" ") if r[1] else [] for r in rows}
    term_ids = dict(conn.execute(
        "SELECT token, id FROM wenda.terms WHERE collection = %s AND token = ANY(%s)",
        (collection, sorted({t for ts in tokens.values() for t in ts}))).fetchall())
    wrong = []
    for chunk_id, _, stored in rows:
        if any(t not in term_ids for t in tokens[chunk_id]):
            continue  # named by the term checks
        want = bm25.chunk_weights(tokens[chunk_id], term_ids, weighted)
        have = dict(zip(stored.indices(), stored.values(), strict=True))
        expected = dict(zip(want.indices(), want.values(), strict=True))
        if have.keys() != expected.keys() or not all(
                math.isclose(have[k], expected[k], rel_tol=1e-5) for k in have):
            wrong.append(chunk_id)
    if wrong:
        problems.append(f"{len(wrong)} of {len(sample)} sampled chunks have BM25 weights other than"
                        f" avgdl {weighted:.3f} gives (chunk ids {sorted(wrong)[:SHOWN]})")


def diagnose(url: str, collection: str, directory: Path, *, attempts: int = 3) -> DoctorReport:
    """``rag doctor`` on one collection of the database at ``url``; ``directory`` is its local
    folder (uploads). Messages name the database by ``describe``: never its password."""
    report = DoctorReport(directory)
    where = f"the PostgreSQL database {describe(url)}"
    try:
        if not _has_tables(url):
            report.problems.append(f"no wenda tables in {where}")
            return report
        pool = pool_for(url)
        with pool.connection() as conn:
            row = conn.execute("SELECT embedder, dim, schema_version FROM wenda.collections WHERE name = %s",
                               (collection,)).fetchone()
        if row is None:
            report.problems.append(f"no collection {collection!r} in {where}")
            return report
        if row[2] != SCHEMA_VERSION:
            report.problems.append(f"collection {collection!r} in {where} was made by schema version"
                                   f" {row[2]}, this wenda reads {SCHEMA_VERSION}")
            return report
        index = PostgresIndex(pool, collection, StoredEmbedder(row[0], int(row[1])), directory)
        index.reload()
        report.problems = settled(index, check, attempts)
        with pool.connection() as conn:
            paths = conn.execute("SELECT doc_id, path FROM wenda.documents WHERE collection = %s"
                                 " ORDER BY doc_id", (collection,)).fetchall()
    except RagError as exc:  # the pool's errors name the database without its password
        report.problems.append(str(exc))
        return report
    problems, notes = missing_sources(directory, paths)
    report.problems += problems
    report.notes += notes
    report.stats = {**index.stats(), "schema_version": row[2]}
    return report


def _has_tables(url: str) -> bool:
    """Whether the database holds wenda's tables, asked on a connection of its own: the process's
    pool (``pool_for``) would create them."""
    probe = Pool(url)
    try:
        with probe.connection() as conn:
            found = conn.execute("SELECT to_regclass('wenda.collections') IS NOT NULL").fetchone()
        return bool(found and found[0])
    finally:
        probe.close()
