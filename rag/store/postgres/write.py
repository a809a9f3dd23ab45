"""The writes of ``PostgresIndex.commit``: one transaction per ``Change``.

In order: lock the collection's row (concurrent commits to one collection queue here, so the
counts below stay exact), update file hashes and tags, delete the removed documents' chunks
(taking them off the terms' document frequencies) and rows, add the new terms and count the new
chunks in, re-weight every chunk if avgdl moved past the tolerance (``bm25.needs_reweight``),
insert the documents and their chunks (``COPY``), and store the totals with the generation, bumped
when readers would see a difference. Any error rolls all of it back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from rag.errors import IndexStateError, NotFoundError
from rag.store.backend import Change, text_sha
from rag.store.docstore import pages_to_json
from rag.store.postgres import bm25
from rag.text.chunk import Chunk
from rag.text.lexical import tokenize

__all__ = ["commit", "insert_chunks"]

_COPY_CHUNKS = ("COPY wenda.chunks(collection, doc_id, ordinal, text, ostart, oend, nstart, nend,"
                " tokens, text_sha, embedding, bm25, terms) FROM STDIN (FORMAT BINARY)")
_CHUNK_TYPES = ["text", "text", "int4", "text", "int4", "int4", "int4", "int4", "text", "text",
                "vector", "sparsevec", "int4[]"]


def commit(conn: psycopg.Connection[Any], collection: str, change: Change, dim: int,
           planned_from: int | None = None) -> int | None:
    """Apply ``change`` in one transaction; with ``planned_from``, only if the collection is still
    at that generation (else ``IndexStateError``, nothing written). Returns the generation it left
    (None when there was nothing to write)."""
    if not (change.added or change.removed or change.retagged or change.rehashed):
        return None  # an ingest that found nothing to do writes nothing
    chunks = change.chunks()
    vectors = change.vectors if chunks and change.vectors is not None else np.zeros((0, dim), np.float32)
    if vectors.shape != (len(chunks), dim):
        raise ValueError(f"{vectors.shape} vectors for {len(chunks)} chunks of dimension {dim}")
    # as stored and read back (``tokens`` column, split on spaces), so weights and df agree with it
    tokens = [" ".join(tokenize(c.text)).split(" ") for c in chunks]
    tokens = [t if t != [""] else [] for t in tokens]
    with conn.transaction():
        row = conn.execute("SELECT generation, n_chunks, sum_dl, weighted_avgdl FROM wenda.collections"
                           " WHERE name = %s FOR UPDATE", (collection,)).fetchone()
        if row is None:
            raise NotFoundError(f"no collection {collection!r}")
        generation, n, sum_dl, weighted = row
        if planned_from is not None and generation != planned_from:
            raise IndexStateError(f"collection {collection!r} changed while this ingest was planned (another"
                                  " writer's commit landed late); nothing was written: run it again")
        generation += change.visible
        conn.cursor().executemany(
            "UPDATE wenda.documents SET source_sha256 = %s WHERE collection = %s AND doc_id = %s",
            [(sha, collection, doc_id) for sha, doc_id in change.rehashed])
        conn.cursor().executemany(
            "UPDATE wenda.documents SET tags = %s, source_sha256 = %s WHERE collection = %s AND doc_id = %s",
            [(list(tags), sha, collection, doc_id) for doc_id, tags, sha in change.retagged])
        gone, gone_dl = _remove(conn, collection, change.removed)
        ids = _count_terms(conn, collection, tokens)
        n += len(chunks) - gone
        sum_dl += sum(map(len, tokens)) - gone_dl
        avgdl = sum_dl / n if n else 0.0
        if bm25.needs_reweight(avgdl, weighted):
            bm25.reweight(conn, collection, avgdl)
            weighted = avgdl
        _insert_documents(conn, collection, change, generation)
        insert_chunks(conn, collection, chunks, tokens, vectors, ids, weighted)
        conn.execute("UPDATE wenda.collections SET generation = %s, n_chunks = %s, sum_dl = %s,"
                     " weighted_avgdl = %s WHERE name = %s",
                     (generation, n, sum_dl, weighted if n else 0.0, collection))
    return int(generation)


def _remove(conn: psycopg.Connection[Any], collection: str, doc_ids: Sequence[str]) -> tuple[int, int]:
    """Delete documents and their chunks; returns how many chunks went and their total length."""
    if not doc_ids:
        return 0, 0
    row = conn.execute(
        "WITH gone AS (DELETE FROM wenda.chunks WHERE collection = %(c)s AND doc_id = ANY(%(ids)s)"
        "              RETURNING terms, tokens),"
        " counts AS (SELECT t AS id, count(*) AS n FROM gone, unnest(gone.terms) AS t GROUP BY t),"
        " lowered AS (UPDATE wenda.terms SET df = terms.df - counts.n FROM counts"
        "             WHERE terms.id = counts.id RETURNING 1)"
        " SELECT count(*), coalesce(sum(cardinality(string_to_array(tokens, ' '))), 0) FROM gone",
        {"c": collection, "ids": list(doc_ids)}).fetchone()
    conn.execute("DELETE FROM wenda.documents WHERE collection = %s AND doc_id = ANY(%s)",
                 (collection, list(doc_ids)))
    assert row is not None
    return int(row[0]), int(row[1])


def _count_terms(conn: psycopg.Connection[Any], collection: str, tokens: list[list[str]]) -> dict[str, int]:
    """Add the chunks' tokens to the terms (a new token gets an id; a term whose df fell to 0
    keeps its row, so ids never change) and their document frequencies; returns token -> id."""
    df = Counter(t for ts in tokens for t in set(ts))
    if not df:
        return {}
    vocabulary = sorted(df)
    conn.execute("INSERT INTO wenda.terms(collection, token, df) SELECT %s, unnest(%s::text[]), 0"
                 " ON CONFLICT (collection, token) DO NOTHING", (collection, vocabulary))
    ids: dict[str, int] = dict(conn.execute(
        "SELECT token, id FROM wenda.terms WHERE collection = %s AND token = ANY(%s)",
        (collection, vocabulary)).fetchall())
    conn.execute("UPDATE wenda.terms SET df = terms.df + v.n FROM unnest(%s::int4[], %s::int4[]) AS v(id, n)"
                 " WHERE terms.id = v.id", ([ids[t] for t in vocabulary], [df[t] for t in vocabulary]))
    return ids


def _insert_documents(conn: psycopg.Connection[Any], collection: str, change: Change,
                      generation: int) -> None:
    now = time.time()
    conn.cursor().executemany(
        "INSERT INTO wenda.documents(collection, doc_id, path, sha256, text, ntext, origin, ingested_at,"
        " source, title, media_type, pages, source_sha256, tags, generation)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [(collection, doc.doc_id, doc.path, doc.sha256, doc.text, norm.text,
          np.asarray(norm.origin, dtype=np.int32).tobytes(), now, doc.source or doc.path, doc.title,
          doc.media_type, pages_to_json(doc.pages), doc.source_sha256, list(doc.tags), generation)
         for doc, norm, _ in change.added])


def insert_chunks(conn: psycopg.Connection[Any], collection: str, chunks: Sequence[Chunk],
                  tokens: list[list[str]], vectors: np.ndarray, ids: dict[str, int], avgdl: float) -> None:
    """``COPY`` the chunks in, in order (their ids come out in the same order)."""
    if not chunks:
        return
    with conn.cursor().copy(_COPY_CHUNKS) as copy:
        copy.set_types(_CHUNK_TYPES)
        for c, toks, vector in zip(chunks, tokens, vectors, strict=True):
            copy.write_row((collection, c.doc_id, c.ordinal, c.text, c.start, c.end, c.nstart, c.nend,
                            " ".join(toks), text_sha(c.text), np.asarray(vector, dtype=np.float32),
                            bm25.chunk_weights(toks, ids, avgdl), sorted({ids[t] for t in toks})))
