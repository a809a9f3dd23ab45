"""The SQLite docstore's SQL: its schema, and the writes ``Index.commit`` / ``Index.delete`` make.

Every function takes an open connection; the caller owns the transaction, so a commit's deletes,
inserts and generation bump land together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.errors import IncompatibleIndexError, NotFoundError
from rag.loaders import Page
from rag.store.backend import Change, Source, StoredDocument, text_sha
from rag.text.lexical import tokenize
from rag.text.normalize import Normalized

__all__ = ["SCHEMA_VERSION", "check_meta", "delete", "document_from_row", "known_vectors", "pages_from_json",
           "pages_to_json", "sources", "write"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents(
    doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL,
    ntext TEXT NOT NULL, origin BLOB NOT NULL, ingested_at REAL NOT NULL,
    source TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '',
    media_type TEXT NOT NULL DEFAULT 'text/plain', pages TEXT NOT NULL DEFAULT '[]',
    source_sha256 TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, ostart INTEGER NOT NULL, oend INTEGER NOT NULL,
    nstart INTEGER NOT NULL, nend INTEGER NOT NULL, tokens TEXT NOT NULL, text_sha TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_sha ON chunks(text_sha);
"""
# Columns added since schema 1 (documents from files other than text): an older index gains them
# with their defaults when opened, so it keeps working without a rebuild.
_ADDED_COLUMNS = {
    "source": "TEXT NOT NULL DEFAULT ''", "title": "TEXT NOT NULL DEFAULT ''",
    "media_type": "TEXT NOT NULL DEFAULT 'text/plain'", "pages": "TEXT NOT NULL DEFAULT '[]'",
    "source_sha256": "TEXT NOT NULL DEFAULT ''", "tags": "TEXT NOT NULL DEFAULT '[]'",
}
_BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"


def pages_to_json(pages: tuple[Page, ...]) -> str:
    return json.dumps([[p.start, p.number, p.label] if p.label else [p.start, p.number]
                       for p in pages], ensure_ascii=False, separators=(",", ":"))


def pages_from_json(raw: str) -> tuple[Page, ...]:
    return tuple(Page(*row) for row in json.loads(raw or "[]"))


def document_from_row(doc_id: str, row: Sequence[Any] | None, as_loaded: bool) -> StoredDocument:
    """A stored document from ``(text, ntext, origin, _, pages, media_type, title)`` (either
    backend's row); ``NotFoundError`` when there is none, or when it is not the version the
    reader's loaded state points into (``as_loaded`` false: another writer changed it since)."""
    if row is None or not as_loaded:
        raise NotFoundError(f"no document {doc_id!r} in the index (as loaded)" if row else
                            f"no document {doc_id!r} in the index")
    origin = np.frombuffer(row[2], dtype=np.int32).tolist()
    return StoredDocument(row[0], Normalized(row[1], origin, len(row[0])), pages_from_json(row[4]),
                          row[5], row[6])


def check_meta(db: sqlite3.Connection, name: str, dim: int, where: str) -> None:
    """Create the schema (or add the columns an older one lacks) and check that the index was
    built by this schema version and the embedder ``name``."""
    with db:
        db.executescript(_SCHEMA)
        have = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
        for column, spec in _ADDED_COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE documents ADD COLUMN {column} {spec}")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("embedder", name), ("dim", str(dim)),
                ("generation", "0")])
            return
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        raise IncompatibleIndexError(
            f"the index in {where} was made by schema version {meta.get('schema_version')}, this"
            f" wenda reads {SCHEMA_VERSION}: rebuild it with `rag ingest --rebuild`")
    if meta.get("embedder") != name:
        raise IncompatibleIndexError(
            f"the index in {where} was built with embedder {meta.get('embedder')!r}, not {name!r}:"
            f" set RAG_EMBEDDER={meta.get('embedder')} or rebuild with `rag ingest --rebuild`")


def sources(db: sqlite3.Connection) -> dict[str, Source]:
    return {d: Source(sha, src, tuple(json.loads(t))) for d, sha, src, t in
            db.execute("SELECT doc_id, sha256, source_sha256, tags FROM documents")}


def known_vectors(db: sqlite3.Connection, shas: Sequence[str]) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for i in range(0, len(shas), 500):
        part = list(shas[i:i + 500])
        marks = ",".join("?" * len(part))
        for sha, blob in db.execute(f"SELECT text_sha, vector FROM chunks WHERE text_sha IN ({marks})",
                                    part):
            known[sha] = np.frombuffer(blob, dtype=np.float32)
    return known


def write(db: sqlite3.Connection, change: Change) -> None:
    """Apply ``change`` (inside the caller's transaction); the generation moves if it is visible."""
    now = time.time()
    db.executemany("UPDATE documents SET source_sha256=? WHERE doc_id=?", change.rehashed)
    db.executemany("UPDATE documents SET tags=?, source_sha256=? WHERE doc_id=?",
                   [(json.dumps(tags, ensure_ascii=False), sha, doc_id)
                    for doc_id, tags, sha in change.retagged])
    for doc_id in change.removed:
        db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
    db.executemany(
        "INSERT INTO documents(doc_id, path, sha256, text, ntext, origin, ingested_at, source,"
        " title, media_type, pages, source_sha256, tags)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(doc.doc_id, doc.path, doc.sha256, doc.text, norm.text,
          np.asarray(norm.origin, dtype=np.int32).tobytes(), now, doc.source or doc.path,
          doc.title, doc.media_type, pages_to_json(doc.pages), doc.source_sha256,
          json.dumps(doc.tags, ensure_ascii=False))
         for doc, norm, _ in change.added])
    chunks = change.chunks()
    vectors = change.vectors if change.vectors is not None else np.zeros((0, 0), np.float32)
    db.executemany(
        "INSERT INTO chunks(doc_id, ordinal, text, ostart, oend, nstart, nend, tokens, text_sha,"
        " vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(c.doc_id, c.ordinal, c.text, c.start, c.end, c.nstart, c.nend,
          " ".join(tokenize(c.text)), text_sha(c.text), np.asarray(vectors[i], np.float32).tobytes())
         for i, c in enumerate(chunks)])
    if change.visible:
        db.execute(_BUMP)


def delete(db: sqlite3.Connection, doc_ids: Sequence[str]) -> list[str]:
    """Remove documents (inside the caller's transaction); returns the ids that existed."""
    gone = [d for d in doc_ids if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (d,)).fetchone()]
    for doc_id in gone:
        db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
    if gone:
        db.execute(_BUMP)
    return gone
