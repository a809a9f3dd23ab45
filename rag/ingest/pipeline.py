"""Bring an index up to date with a set of documents: add, replace, skip, prune.

Unchanged documents (same sha256) cost nothing, and an unchanged file (``SourceFile``: same
bytes) is not even parsed; a changed one has its chunks replaced (chunks whose text did not change
keep their stored vectors); with ``prune`` every document not in the input is deleted. A file that
cannot be parsed is reported in ``failed`` and changes nothing (its stored version, if any, stays,
even with ``prune``). All writes land in one SQLite transaction, under an exclusive file lock. When
nothing changed, nothing is written and nothing reloaded (unless another writer committed).

A caller can bound the work (``max_chunks``: more chunks to write → ``DocumentTooLargeError``
before any embedding) and stop it (``cancelled()`` is checked between embedding batches and
before the commit → ``IngestCancelled``); either way the index is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import DocumentError, DocumentTooLargeError, IngestCancelled
from rag.ingest.documents import Document, Skipped, SourceFile, find_files
from rag.loaders import Limits
from rag.store.durable import locked
from rag.store.filters import clean_tags
from rag.store.index import Index, pages_to_json
from rag.text.chunk import Chunk, chunk_document
from rag.text.lexical import tokenize
from rag.text.normalize import Normalized, normalize

__all__ = ["IngestReport", "delete_documents", "ingest", "ingest_paths"]

Progress = Callable[[int, int], None]  # (done, total) chunks embedded
Reading = Callable[[int, int, str], None]  # (done, total, path) files parsed
Cancelled = Callable[[], bool]  # true once the caller wants the ingest stopped


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retagged: list[str] = field(default_factory=list)  # same text, new tags
    failed: list[Skipped] = field(default_factory=list)  # files that could not be used, and why
    notes: list[Skipped] = field(default_factory=list)  # parts of files left out (pages, …)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.retagged)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _check_cancelled(cancelled: Cancelled | None) -> None:
    if cancelled is not None and cancelled():
        raise IngestCancelled("cancelled: the index was left as it was")


def _embed(index: Index, chunks: list[Chunk], batch: int, progress: Progress | None,
           report: IngestReport, cancelled: Cancelled | None = None) -> np.ndarray:
    """Vectors for ``chunks``, reusing stored vectors of identical chunk text."""
    shas = [_sha(c.text) for c in chunks]
    known: dict[str, bytes] = {}
    with index.connect() as db:
        for i in range(0, len(shas), 500):
            part = shas[i:i + 500]
            marks = ",".join("?" * len(part))
            known.update(db.execute(
                f"SELECT text_sha, vector FROM chunks WHERE text_sha IN ({marks})", part))
    vectors = np.zeros((len(chunks), index.embedder.dim), dtype=np.float32)
    todo = [i for i, s in enumerate(shas) if s not in known]
    for i, s in enumerate(shas):
        if s in known:
            vectors[i] = np.frombuffer(known[s], dtype=np.float32)
    report.chunks_reused += len(chunks) - len(todo)
    if progress and todo:
        progress(0, len(todo))
    for b in range(0, len(todo), batch):
        _check_cancelled(cancelled)
        rows = todo[b:b + batch]
        vectors[rows] = index.embedder.embed_passages([chunks[i].text for i in rows])
        report.chunks_embedded += len(rows)
        if progress:
            progress(report.chunks_embedded, len(todo))
    return vectors


def _tagged(doc: Document, tags: tuple[str, ...] | None, stored: tuple[str, ...]) -> Document:
    """The document with its tags: its own (front matter) plus those given, or without given
    ones, plus those it had."""
    return replace(doc, tags=clean_tags([*doc.tags, *(stored if tags is None else tags)]))


def _parse(items: Sequence[Document | SourceFile], stored: dict[str, tuple[str, str, tuple[str, ...]]],
           limits: Limits | None, reading: Reading | None, report: IngestReport,
           rehashed: list[tuple[str, str]], tags: tuple[str, ...] | None) -> list[Document]:
    """The documents that changed: files whose bytes (and tags) are unchanged are skipped
    unparsed, files that fail to parse are reported in ``report.failed``; ``rehashed`` gets the
    files whose bytes changed but not their text (so the next run skips them unparsed). A
    document whose text is unchanged but whose tags are not lands in ``report.retagged``."""
    changed: list[Document] = []
    for i, item in enumerate(items):
        sha, source_sha, had = stored.get(item.doc_id, ("", "", ()))
        if isinstance(item, SourceFile):
            if item.sha256 == source_sha and (tags is None or had == tags):
                report.skipped.append(item.doc_id)
                continue
            if reading:
                reading(i, len(items), str(item.path))
            try:
                doc = item.load(limits)
            except DocumentError as exc:
                report.failed.append(Skipped(str(item.path), str(exc).removeprefix(f"{item.path}: ")))
                continue
            report.notes += [Skipped(str(item.path), note) for note in doc.notes]
        else:
            doc = item
        doc = _tagged(doc, tags, had)
        if doc.sha256 == sha and doc.tags != had:
            report.retagged.append(doc.doc_id)
            changed.append(doc)
            continue
        if doc.sha256 == sha:
            report.skipped.append(doc.doc_id)
            if doc.source_sha256 != source_sha:
                rehashed.append((doc.source_sha256, doc.doc_id))
            continue
        changed.append(doc)
    return changed


def ingest(index: Index, documents: Sequence[Document | SourceFile], *, prune: bool = False,
           chunk_size: int = 240, overlap: int = 1, batch: int = 32,
           progress: Progress | None = None, limits: Limits | None = None,
           reading: Reading | None = None, max_chunks: int | None = None,
           cancelled: Cancelled | None = None, tags: Sequence[str] | None = None) -> IngestReport:
    """Make the index hold ``documents``; see the module docstring. Reloads ``index`` if changed.

    ``tags`` replace the documents' given tags (their front matter's stay); without it, a
    changed document keeps the tags it had."""
    started = time.perf_counter()
    report = IngestReport()
    with locked(index.directory):
        with index.connect() as db:
            stored = {d: (sha, src, tuple(json.loads(t))) for d, sha, src, t in
                      db.execute("SELECT doc_id, sha256, source_sha256, tags FROM documents")}
        todo: list[tuple[Document, Normalized, list[Chunk]]] = []
        rehashed: list[tuple[str, str]] = []
        given = None if tags is None else clean_tags(tags)
        retag: list[Document] = []
        for doc in _parse(documents, stored, limits, reading, report, rehashed, given):
            if doc.doc_id in report.retagged:
                retag.append(doc)
                continue
            (report.updated if doc.doc_id in stored else report.added).append(doc.doc_id)
            norm = normalize(doc.text)
            todo.append((doc, norm, chunk_document(doc.doc_id, norm, chunk_size, overlap)))
        if prune:
            keep = {d.doc_id for d in documents}  # a file that failed to parse keeps its old version
            report.removed = sorted(d for d in stored if d not in keep)
        all_chunks = [c for _, _, cs in todo for c in cs]
        if max_chunks is not None and len(all_chunks) > max_chunks:
            raise DocumentTooLargeError(
                f"{', '.join(d.doc_id for d, _, _ in todo[:3])}: {len(all_chunks)} chunks to write, over"
                f" the limit of {max_chunks} per ingest (RAG_MAX_JOB_CHUNKS); split the document")
        vectors = _embed(index, all_chunks, batch, progress, report, cancelled)
        _check_cancelled(cancelled)
        if rehashed:  # the same content: no new generation, readers need not reload
            with index.connect() as db, db:
                db.executemany("UPDATE documents SET source_sha256=? WHERE doc_id=?", rehashed)
        if retag:  # the commit below bumps the generation
            with index.connect() as db, db:
                db.executemany("UPDATE documents SET tags=?, source_sha256=? WHERE doc_id=?",
                               [(json.dumps(d.tags, ensure_ascii=False),
                                 d.source_sha256 or stored[d.doc_id][1], d.doc_id) for d in retag])
        if report.changed:
            _commit(index, todo, all_chunks, vectors, report)
            index.reload()
        else:
            index.refresh()
    report.seconds = time.perf_counter() - started
    return report


def ingest_paths(index: Index, paths: Sequence[str | Path], **options: Any
                 ) -> tuple[list[SourceFile], IngestReport]:
    """``ingest`` of the files under ``paths`` (found and named by ``find_files``); the files
    passed over while finding them (unsupported types, taken names) lead ``report.failed``."""
    files, passed_over = find_files(paths)
    report = ingest(index, files, **options)
    report.failed[:0] = passed_over
    return files, report


def _commit(index: Index, todo: list[tuple[Document, Normalized, list[Chunk]]],
            chunks: list[Chunk], vectors: np.ndarray, report: IngestReport) -> None:
    now = time.time()
    with index.connect() as db, db:
        for doc_id in [*report.updated, *report.removed]:
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
             for doc, norm, _ in todo])
        db.executemany(
            "INSERT INTO chunks(doc_id, ordinal, text, ostart, oend, nstart, nend, tokens, text_sha,"
            " vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.doc_id, c.ordinal, c.text, c.start, c.end, c.nstart, c.nend,
              " ".join(tokenize(c.text)), _sha(c.text), vectors[i].tobytes())
             for i, c in enumerate(chunks)])
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")


def delete_documents(index: Index, doc_ids: Sequence[str]) -> list[str]:
    """Remove documents by id; returns the ids that existed. Reloads ``index`` if any did."""
    with locked(index.directory):
        with index.connect() as db, db:
            gone = [d for d in doc_ids
                    if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (d,)).fetchone()]
            for doc_id in gone:
                db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
                db.execute("DELETE FROM documents WHERE doc_id=?", (doc_id,))
            if gone:
                db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1"
                           " WHERE key='generation'")
        if gone:
            index.reload()
        else:
            index.refresh()
    return gone
