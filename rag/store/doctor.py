"""Integrity check of an index: does everything derived from the docstore agree with it?

``check(index)`` compares a loaded ``Index`` with the docstore it was loaded from, in one read
snapshot, and returns the problems found (an empty list means healthy):

- generation: the loaded index is at the docstore's generation;
- ids: FAISS ids == docstore chunk ids == the in-memory chunk map; BM25 holds one row per chunk;
- offsets: ``0 <= start < end <= len(original)``, ``0 <= nstart < nend <= len(normalized)``, the
  chunk text is ``normalized[nstart:nend]`` and maps back to ``[start, end)``; the origin map has
  one strictly increasing entry per normalized character; ordinals run 0..n-1 per document;
- vectors: stored blobs have the index's dimension; FAISS holds the stored vectors (a sample);
- documents: sha256 matches the stored text; a document with searchable text has chunks;
- SQLite's own ``PRAGMA quick_check``.

``diagnose(where, collection)`` is what ``rag doctor`` runs, for either backend: a collection in
a PostgreSQL database goes to ``rag.store.postgres.doctor``; one on this machine is opened
without loading a model (the embedder's name and dimension come from the docstore), checked, and
given notes about things that heal themselves (a stale FAISS cache, temp files left by a killed
write). Both also look for each document's source file: an upload whose stored file (in
``<index>/uploads/``) is gone is a problem, since the index owns those files (the server stores,
lists and deletes them); a file ingested from the user's own folder that is gone is only a note:
the index answers from its stored text, and moving or deleting one's own files is no damage
(``rag ingest --prune`` on the folder drops such documents). The per-document checks and the
report are shared with the PostgreSQL doctor (``rag.store.checks``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.store.checks import DoctorReport, StoredEmbedder, check_document, missing_sources, settled, stale
from rag.store.collections import DEFAULT, Location, collection_dir
from rag.store.index import Index

__all__ = ["DoctorReport", "check", "diagnose"]

VECTOR_SAMPLE = 2000  # stored vectors compared with FAISS per check (evenly spaced)


def check(index: Index) -> list[str]:
    """Problems with ``index`` (see the module docstring); ``[]`` when it is consistent."""
    problems: list[str] = []
    with index.connect() as db:
        db.execute("BEGIN")  # one snapshot for every read below
        try:
            _check_db(index, db, problems)
        finally:
            db.rollback()
    return problems


def _check_db(index: Index, db: sqlite3.Connection, problems: list[str]) -> None:
    quick = [r[0] for r in db.execute("PRAGMA quick_check")]
    if quick != ["ok"]:
        problems.append(f"SQLite quick_check: {'; '.join(quick[:5])}")
    generation = int(db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    if generation != index.generation:
        problems.append(stale(index.generation, generation, "docstore"))
        return  # everything below would compare two different states
    rows = db.execute("SELECT id, doc_id, ordinal, text, ostart, oend, nstart, nend, length(vector)"
                      " FROM chunks ORDER BY doc_id, ordinal").fetchall()
    ids = np.array(sorted(r[0] for r in rows), dtype=np.int64)
    _check_ids(index, ids, problems)
    width = 4 * index.embedder.dim
    bad_width = [r[0] for r in rows if r[8] != width]
    if bad_width:
        problems.append(f"{len(bad_width)} stored vectors are not {index.embedder.dim}-d float32 "
                        f"(chunk ids {bad_width[:5]})")
    by_doc: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        by_doc.setdefault(r[1], []).append(r)
        loaded = index.chunks.get(r[0])
        if loaded is not None and (loaded.doc_id, loaded.ordinal, loaded.text, loaded.start,
                                   loaded.end, loaded.nstart, loaded.nend) != tuple(r[1:8]):
            problems.append(f"chunk {r[0]} in memory differs from the docstore")
    seen: set[str] = set()
    for doc_id, sha, text, ntext, origin in db.execute(
            "SELECT doc_id, sha256, text, ntext, origin FROM documents ORDER BY doc_id"):
        seen.add(doc_id)
        check_document(doc_id, sha, text, ntext, origin, by_doc.get(doc_id, []), problems)
    orphans = sorted(set(by_doc) - seen)
    if orphans:
        problems.append(f"chunks of documents not in the docstore: {orphans[:5]}")
    if not bad_width:
        _check_vectors(index, db, ids, problems)


def _check_ids(index: Index, ids: np.ndarray, problems: list[str]) -> None:
    import faiss

    loaded = index.loaded  # one state throughout, even if the index reloads meanwhile
    dense = loaded.faiss
    if dense is None:
        problems.append("no FAISS index is loaded")
        return
    faiss_ids = np.sort(faiss.vector_to_array(dense.id_map)) if dense.ntotal else np.zeros(0, np.int64)
    if dense.ntotal != len(ids) or not np.array_equal(faiss_ids, ids):
        problems.append(f"FAISS holds {dense.ntotal} vectors, the docstore {len(ids)} chunks"
                        f" ({_diff(faiss_ids, ids)})")
    if dense.d != index.embedder.dim:
        problems.append(f"FAISS dimension {dense.d} != embedder dimension {index.embedder.dim}")
    chunk_ids = np.array(sorted(loaded.chunks), dtype=np.int64)
    if not np.array_equal(chunk_ids, ids):
        problems.append(f"the loaded chunk map has {len(chunk_ids)} chunks, the docstore {len(ids)}"
                        f" ({_diff(chunk_ids, ids)})")
    if loaded.lexicon.size != len(ids) or not np.array_equal(np.sort(loaded.rows), ids):
        problems.append(f"BM25 holds {loaded.lexicon.size} rows, the docstore {len(ids)} chunks")


def _diff(have: np.ndarray, want: np.ndarray) -> str:
    extra, missing = np.setdiff1d(have, want), np.setdiff1d(want, have)
    return f"extra ids {extra[:5].tolist()}, missing ids {missing[:5].tolist()}"


def _check_vectors(index: Index, db: sqlite3.Connection, ids: np.ndarray, problems: list[str]) -> None:
    dense = index.loaded.faiss
    if not len(ids) or dense is None:
        return
    sample = ids[np.linspace(0, len(ids) - 1, min(VECTOR_SAMPLE, len(ids))).astype(int)].tolist()
    wrong = []
    for i in range(0, len(sample), 500):
        part = sample[i:i + 500]
        marks = ",".join("?" * len(part))
        for cid, blob in db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", part):
            stored = np.frombuffer(blob, dtype=np.float32)
            if not abs(float(np.linalg.norm(stored)) - 1.0) < 1e-3:
                wrong.append(f"{cid} (norm {np.linalg.norm(stored):.3f})")
                continue
            try:
                held = dense.reconstruct(int(cid))
            except RuntimeError:
                wrong.append(f"{cid} (not in FAISS)")
                continue
            if not np.allclose(held, stored, atol=1e-5):
                wrong.append(f"{cid} (FAISS differs)")
    if wrong:
        problems.append(f"{len(wrong)} of {len(sample)} sampled vectors are wrong: {wrong[:5]}")


def _cache_notes(directory: Path, generation: int) -> list[str]:
    notes = []
    try:
        tagged = json.loads((directory / "vectors.json").read_text())["generation"]
    except (OSError, ValueError, KeyError, TypeError):
        tagged = None
    if tagged != generation:
        notes.append(f"the FAISS cache on disk was for generation {tagged}, the docstore is at "
                     f"{generation}: it is rebuilt when the index is opened (done now)")
    leftovers = sorted(p.name for p in directory.glob(".vectors.*"))
    if leftovers:
        notes.append(f"temporary files left by an interrupted write (safe to delete): {leftovers[:5]}")
    return notes


def diagnose(where: Location | str | Path, collection: str = DEFAULT, *, attempts: int = 3
             ) -> DoctorReport:
    """Check a collection without loading a model (``rag doctor``): ``where`` is a ``Location``
    (``Settings.location()``: folders, or a PostgreSQL database) or an index directory.

    A write committed while checking is not damage: the check is repeated on the new state
    (``attempts`` times)."""
    at = where if isinstance(where, Location) else Location(Path(where))
    directory = collection_dir(at.index_dir, collection)
    if at.database_url:
        from rag.store.postgres.doctor import diagnose as diagnose_postgres

        return diagnose_postgres(at.database_url, collection, directory, attempts=attempts)
    return _diagnose_sqlite(directory, attempts)


def _diagnose_sqlite(directory: Path, attempts: int) -> DoctorReport:
    """The index in ``directory``; opening it rebuilds a stale FAISS cache, as every reader does."""
    report = DoctorReport(directory)
    store = report.directory / "docstore.sqlite"
    if not store.is_file():
        report.problems.append(f"no index in {report.directory} (no docstore.sqlite)")
        return report
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        embedder = StoredEmbedder(meta["embedder"], int(meta["dim"]))
        report.notes += _cache_notes(report.directory, int(meta["generation"]))
        index = Index.open(report.directory, embedder)
        report.problems = settled(index, check, attempts)
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT doc_id, path FROM documents ORDER BY doc_id").fetchall()
        problems, notes = missing_sources(report.directory, rows)
        report.problems += problems
        report.notes += notes
    except (sqlite3.Error, KeyError, ValueError) as exc:
        report.problems.append(f"cannot read the docstore in {report.directory}: {exc}")
        return report
    except RagError as exc:
        report.problems.append(str(exc))
        return report
    report.stats = {**index.stats(), "schema_version": meta.get("schema_version")}
    return report
