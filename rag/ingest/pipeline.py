"""Bring an index up to date with a set of documents: add, replace, skip, prune.

Unchanged documents (same sha256) cost nothing, and an unchanged file (``SourceFile``: same
bytes) is not even parsed; a changed one has its chunks replaced (chunks whose text did not change
keep their stored vectors); with ``prune`` every document not in the input is deleted. A file that
cannot be parsed is reported in ``failed`` and changes nothing (its stored version, if any, stays,
even with ``prune``). All writes land in one transaction of the index's backend (``commit``), under
its writer lock. When nothing changed, nothing is written and nothing reloaded (unless another
writer committed).

A caller can bound the work (``max_chunks``: more chunks to write → ``DocumentTooLargeError``
before any embedding) and stop it (``cancelled()`` is checked between embedding batches and
before the commit → ``IngestCancelled``); either way the index is left as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import DocumentError, DocumentTooLargeError, IngestCancelled
from rag.ingest.documents import Document, Skipped, SourceFile, find_files
from rag.loaders import Limits
from rag.store.backend import Change, SearchBackend, Source, text_sha
from rag.store.filters import clean_tags
from rag.text.chunk import Chunk, chunk_document
from rag.text.normalize import Normalized, normalize

__all__ = ["IngestReport", "delete_documents", "ingest", "ingest_paths", "plan", "reuse_vectors",
           "split_document", "unchanged"]

Progress = Callable[[int, int], None]  # (done, total) chunks embedded
Reading = Callable[[int, int, str], None]  # (done, total, path) files parsed
Cancelled = Callable[[], bool]  # true once the caller wants the ingest stopped
Embed = Callable[[SearchBackend, list[Chunk], "IngestReport"], np.ndarray]  # vectors for chunks


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


def _check_cancelled(cancelled: Cancelled | None) -> None:
    if cancelled is not None and cancelled():
        raise IngestCancelled("cancelled: the index was left as it was")


def reuse_vectors(index: SearchBackend, chunks: Sequence[Chunk], report: IngestReport
                  ) -> tuple[np.ndarray, list[int]]:
    """Vectors for ``chunks`` with the stored ones of identical chunk text filled in, and the
    positions still to embed (every embedding path: in-process, Ray)."""
    shas = [text_sha(c.text) for c in chunks]
    known = index.known_vectors(shas)
    vectors = np.zeros((len(chunks), index.embedder.dim), dtype=np.float32)
    todo = [i for i, s in enumerate(shas) if s not in known]
    for i, s in enumerate(shas):
        if s in known:
            vectors[i] = known[s]
    report.chunks_reused += len(chunks) - len(todo)
    return vectors, todo


def _embed(index: SearchBackend, chunks: list[Chunk], batch: int, progress: Progress | None,
           report: IngestReport, cancelled: Cancelled | None = None) -> np.ndarray:
    """Vectors for ``chunks``, reusing stored vectors of identical chunk text."""
    vectors, todo = reuse_vectors(index, chunks, report)
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


def unchanged(file: SourceFile, stored: Mapping[str, Source], tags: tuple[str, ...] | None) -> bool:
    """Whether ``file`` is skipped unparsed: the bytes it had when stored, and no other tags given
    (``tags`` cleaned, None when none are given). One rule for every ingest path (``_parse``, and
    ``rag.ingest.distributed``, which must not send such files to the cluster)."""
    had = stored.get(file.doc_id)
    return had is not None and file.sha256 == had.source_sha256 and (tags is None or tags == had.tags)


def _parse(items: Sequence[Document | SourceFile], stored: Mapping[str, Source],
           limits: Limits | None, reading: Reading | None, report: IngestReport,
           rehashed: list[tuple[str, str]], tags: tuple[str, ...] | None) -> list[Document]:
    """The documents that changed: files whose bytes (and tags) are unchanged are skipped
    unparsed, files that fail to parse are reported in ``report.failed``; ``rehashed`` gets the
    files whose bytes changed but not their text (so the next run skips them unparsed). A
    document whose text is unchanged but whose tags are not lands in ``report.retagged``."""
    changed: list[Document] = []
    for i, item in enumerate(items):
        sha, source_sha, had = astuple(stored.get(item.doc_id, Source("", "", ())))
        if isinstance(item, SourceFile):
            if unchanged(item, stored, tags):
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


def ingest(index: SearchBackend, documents: Sequence[Document | SourceFile], *, prune: bool = False,
           chunk_size: int = 240, overlap: int = 1, batch: int = 32,
           progress: Progress | None = None, limits: Limits | None = None,
           reading: Reading | None = None, max_chunks: int | None = None,
           cancelled: Cancelled | None = None, tags: Sequence[str] | None = None,
           embed: Embed | None = None) -> IngestReport:
    """Make the index hold ``documents``; see the module docstring. Reloads ``index`` if changed.

    ``tags`` replace the documents' given tags (their front matter's stay); without it, a
    changed document keeps the tags it had. ``embed`` replaces the in-process embedding (the
    Ray path: ``rag.ingest.distributed.embed_on_ray``); it gets every chunk to write and reuses
    stored vectors itself (``known_vectors``), as ``_embed`` does."""
    started = time.perf_counter()
    report = IngestReport()
    with index.writing():
        change = plan(index, documents, report, prune=prune, chunk_size=chunk_size,
                      overlap=overlap, limits=limits, reading=reading, max_chunks=max_chunks,
                      tags=tags)
        if embed is None:
            change.vectors = _embed(index, change.chunks(), batch, progress, report, cancelled)
        else:
            change.vectors = embed(index, change.chunks(), report)
        _check_cancelled(cancelled)
        index.commit(change)
    report.seconds = time.perf_counter() - started
    return report


def split_document(doc: Document, chunk_size: int, overlap: int) -> tuple[Normalized, list[Chunk]]:
    """A document's normalized text and its chunks (wherever an ingest runs: here, a Ray worker)."""
    norm = normalize(doc.text)
    return norm, chunk_document(doc.doc_id, norm, chunk_size, overlap)


def plan(index: SearchBackend, documents: Sequence[Document | SourceFile], report: IngestReport, *,
         prune: bool = False, chunk_size: int = 240, overlap: int = 1, limits: Limits | None = None,
         reading: Reading | None = None, max_chunks: int | None = None,
         tags: Sequence[str] | None = None,
         chunked: Mapping[str, tuple[Normalized, list[Chunk]]] | None = None,
         stored: Mapping[str, Source] | None = None) -> Change:
    """What ``ingest`` will commit, vectors aside: parsed, normalized and chunked changed
    documents, the removed ones, the retagged and rehashed ones (call under ``index.writing()``).
    ``chunked``: documents already normalized and chunked elsewhere (by doc id, with the same
    ``chunk_size`` and ``overlap``: the Ray workers of ``rag.ingest.distributed``), not redone;
    ``stored``: ``index.sources()`` when the caller has already read them."""
    stored = index.sources() if stored is None else stored
    change = Change()
    given = None if tags is None else clean_tags(tags)
    for doc in _parse(documents, stored, limits, reading, report, change.rehashed, given):
        if doc.doc_id in report.retagged:
            change.retagged.append((doc.doc_id, doc.tags,
                                    doc.source_sha256 or stored[doc.doc_id].source_sha256))
            continue
        (report.updated if doc.doc_id in stored else report.added).append(doc.doc_id)
        norm, chunks = (chunked or {}).get(doc.doc_id) or split_document(doc, chunk_size, overlap)
        change.added.append((doc, norm, chunks))
    if prune:
        keep = {d.doc_id for d in documents}  # a file that failed to parse keeps its old version
        report.removed = sorted(d for d in stored if d not in keep)
    change.removed = [*report.updated, *report.removed]
    n = len(change.chunks())
    if max_chunks is not None and n > max_chunks:
        raise DocumentTooLargeError(
            f"{', '.join(d.doc_id for d, _, _ in change.added[:3])}: {n} chunks to write, over"
            f" the limit of {max_chunks} per ingest (RAG_MAX_JOB_CHUNKS); split the document")
    return change


def ingest_paths(index: SearchBackend, paths: Sequence[str | Path], **options: Any
                 ) -> tuple[list[SourceFile], IngestReport]:
    """``ingest`` of the files under ``paths`` (found and named by ``find_files``); the files
    passed over while finding them (unsupported types, taken names) lead ``report.failed``."""
    files, passed_over = find_files(paths)
    report = ingest(index, files, **options)
    report.failed[:0] = passed_over
    return files, report


def delete_documents(index: SearchBackend, doc_ids: Sequence[str]) -> list[str]:
    """Remove documents by id; returns the ids that existed. Reloads ``index`` if any did."""
    with index.writing():
        return index.delete(doc_ids)
