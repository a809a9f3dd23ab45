"""What the two doctors share (``rag.store.doctor`` for SQLite, ``rag.store.postgres.doctor``).

Both backends store the same things per document (original text, normalized text, origin map,
chunks with both spans), so both are held to the same rules, worded the same: ``check_document``
(one document and its chunks, in pure Python), ``missing_sources`` (source files gone), the
``DoctorReport`` that ``rag doctor`` prints, the stand-in embedder that lets an index open
without loading a model, and ``settled``: a write committed while checking is not damage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from rag.errors import ModelError
from rag.text.normalize import Normalized

__all__ = ["RELOAD", "DoctorReport", "StoredEmbedder", "check_document", "missing_sources", "settled",
           "stale"]

RELOAD = "reload it"  # ends the problem a write committed meanwhile causes (``settled`` retries)


@dataclass
class DoctorReport:
    """What ``diagnose`` found: ``problems`` (the index is damaged) and ``notes`` (harmless)."""

    directory: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class StoredEmbedder:
    """Stands in for the model the index was built with: the doctor never embeds."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise ModelError("the doctor does not load models")

    embed_passages = embed_queries


def stale(loaded: int, stored: int, store: str) -> str:
    """The problem of an index loaded at another generation than its store's."""
    return f"the loaded index is at generation {loaded}, the {store} at {stored}: {RELOAD}"


class _Reloadable(Protocol):
    def reload(self) -> None: ...


T = TypeVar("T", bound=_Reloadable)


def settled(index: T, check: Callable[[T], list[str]], attempts: int) -> list[str]:
    """``check(index)``, repeated on the new state (up to ``attempts`` times) while it finds the
    index stale: another process committed between loading and checking."""
    problems = check(index)
    for _ in range(attempts - 1):
        if not any(RELOAD in p for p in problems):
            break
        index.reload()
        problems = check(index)
    return problems


def check_document(doc_id: str, sha: str, text: str, ntext: str, origin_blob: bytes,
                   chunks: Sequence[Sequence[Any]], problems: list[str]) -> None:
    """One document's sha256, origin map, chunk ordinals and chunk offsets. ``chunks``: rows
    ``(id, doc_id, ordinal, text, start, end, nstart, nend, ...)`` ordered by ordinal."""
    where = f"document {doc_id!r}"
    if hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != sha:
        problems.append(f"{where}: sha256 does not match the stored text")
    if len(origin_blob) != 4 * len(ntext):
        problems.append(f"{where}: origin map has {len(origin_blob) // 4} entries for "
                        f"{len(ntext)} normalized characters")
        return
    origin = np.frombuffer(origin_blob, dtype=np.int32)
    if len(origin) and (origin[0] < 0 or origin[-1] >= len(text) or np.any(np.diff(origin) <= 0)):
        problems.append(f"{where}: origin map is not strictly increasing within the original text")
        return
    if ntext.strip() and not chunks:
        problems.append(f"{where}: has text but no chunks")
    ordinals = [c[2] for c in chunks]
    if ordinals != list(range(len(chunks))):
        problems.append(f"{where}: chunk ordinals {ordinals[:10]} are not 0..{len(chunks) - 1}")
    norm = Normalized(ntext, origin.tolist(), len(text))
    for cid, _, ordinal, ctext, start, end, nstart, nend, *_ in chunks:
        at = f"{where} chunk {cid} (#{ordinal})"
        if not 0 <= start < end <= len(text):
            problems.append(f"{at}: original span [{start}, {end}) outside 0..{len(text)}")
        elif not 0 <= nstart < nend <= len(ntext):
            problems.append(f"{at}: normalized span [{nstart}, {nend}) outside 0..{len(ntext)}")
        elif ntext[nstart:nend] != ctext:
            problems.append(f"{at}: text is not normalized[{nstart}:{nend}]")
        elif norm.span(nstart, nend) != (start, end):
            problems.append(f"{at}: [{start}, {end}) is not where [{nstart}, {nend}) maps")


def missing_sources(directory: Path, rows: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` about documents whose source file is gone: an upload's stored file
    (in ``<directory>/uploads/``) is the index's own, so a missing one is a problem; a file
    ingested from the user's own folder is theirs to move, so it is a note. A relative path is
    taken from the current directory, as ``rag ingest`` stored it."""
    uploads = (directory / "uploads").resolve()
    lost_uploads: list[str] = []
    lost_sources: list[str] = []
    for doc_id, path in rows:
        if path and not Path(path).exists():
            owned = Path(path).resolve().parent == uploads
            (lost_uploads if owned else lost_sources).append(doc_id)
    problems = [f"{len(lost_uploads)} uploaded documents have no stored file in {uploads}: "
                f"{lost_uploads[:5]} (delete them and upload them again)"] if lost_uploads else []
    notes = [f"{len(lost_sources)} documents were ingested from files that are gone (answers use "
             f"the stored text; `rag ingest --prune` on their folder drops them): {lost_sources[:5]}"
             ] if lost_sources else []
    return problems, notes
