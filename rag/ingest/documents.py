"""Find files, name them, and load them into ``Document``s (text, page table, metadata).

``find_files`` walks the given paths and names each file: its ``doc_id`` is the path relative to
the folder it was found in, without its suffix (``policy/2024/handbook`` for
``policy/2024/handbook.pdf``), so two ``README.md`` in different folders never collide; files that
differ only by suffix keep it (``report.pdf``, ``report.docx``). A file given by itself is named
by its stem. Each ``SourceFile`` carries the sha256 of its bytes, so ingest skips an unchanged
file before parsing it (parsing a PDF costs far more than hashing it); ``load`` parses it with
``rag.loaders``. Files that cannot be used are returned as ``Skipped`` rows with the reason,
never raised, so one bad file does not abort a batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError
from rag.loaders import SUFFIXES, TEXT, Extracted, Limits, Page, extract
from rag.loaders.text import decode

__all__ = ["SUPPORTED_SUFFIXES", "Document", "Skipped", "SourceFile", "decode", "find_files",
           "load_documents", "walk"]

SUPPORTED_SUFFIXES = tuple(SUFFIXES)


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str  # the original text every citation quotes: the file's, or what a loader extracted
    sha256: str  # of ``text``
    path: str = ""  # where the file is stored
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""  # what the user gave: a path, or an upload's file name
    title: str = ""
    media_type: str = TEXT
    pages: tuple[Page, ...] = ()  # where each page / slide / sheet row starts in ``text``
    source_sha256: str = ""  # of the file's bytes: unchanged bytes are skipped before parsing
    notes: tuple[str, ...] = ()  # what the loader left out (pages without text, …)
    tags: tuple[str, ...] = ()

    @classmethod
    def from_text(cls, doc_id: str, text: str, path: str = "") -> Document:
        return cls(doc_id, text, _sha(text.encode("utf-8")), path, source=path)

    @classmethod
    def from_extracted(cls, doc_id: str, extracted: Extracted, *, path: str, source: str,
                       source_sha256: str) -> Document:
        return cls(doc_id, extracted.text, _sha(extracted.text.encode("utf-8")), path,
                   source=source, title=extracted.title, media_type=extracted.media_type,
                   pages=extracted.pages, source_sha256=source_sha256, notes=extracted.notes,
                   tags=extracted.tags)


@dataclass(frozen=True)
class SourceFile:
    """A file found on disk, named and hashed but not parsed yet."""

    doc_id: str
    path: Path
    sha256: str  # of the bytes

    def load(self, limits: Limits | None = None) -> Document:
        """Parse the file (``DocumentError`` when it cannot be used)."""
        data = _read(self.path)
        extracted = extract(data, str(self.path), limits)
        return Document.from_extracted(self.doc_id, extracted, path=str(self.path),
                                       source=str(self.path), source_sha256=_sha(data))


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why."""

    path: str
    reason: str
    walked: bool = False  # an unsupported type met while walking a folder, not a file asked for


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from exc


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from exc
    return digest.hexdigest()


def walk(root: Path) -> list[Path]:
    """Files under ``root``, sorted, dot-files and dot-folders (.git, .cache) left out."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _unsupported(path: Path) -> str:
    return (f"unsupported file type {path.suffix or '(none)'}; supported: "
            f"{', '.join(sorted(SUFFIXES))}")


def _named(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Names without suffixes, except where two files differ by their suffix alone."""
    counts: dict[str, int] = {}
    for _, rel in found:
        counts[rel] = counts.get(rel, 0) + 1
    return [(path, rel if counts[rel] == 1 else rel + path.suffix.lower()) for path, rel in found]


def find_files(paths: Iterable[str | Path]) -> tuple[list[SourceFile], list[Skipped]]:
    """The supported files under ``paths`` (folders walked recursively), named and hashed, and
    the files passed over with the reason. A missing path raises ``DocumentError``."""
    files: dict[str, SourceFile] = {}
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for given in (Path(p) for p in paths):
        if not given.exists():
            raise DocumentError(f"{given}: no such file or directory")
        candidates = walk(given) if given.is_dir() else [given]
        found: list[tuple[Path, str]] = []
        for path in candidates:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            if path.suffix.lower() not in SUFFIXES:
                skipped.append(Skipped(str(path), _unsupported(path), walked=given.is_dir()))
                continue
            rel = path.relative_to(given) if given.is_dir() else Path(path.name)
            found.append((path, rel.with_suffix("").as_posix()))
        for path, doc_id in _named(found):
            if doc_id in files:
                skipped.append(Skipped(str(path), f"its name {doc_id!r} is taken by"
                                                  f" {files[doc_id].path} (ingest the folders apart)"))
                continue
            try:
                files[doc_id] = SourceFile(doc_id, path, _hash_file(path))
            except DocumentError as exc:
                skipped.append(Skipped(str(path), str(exc)))
    return list(files.values()), skipped


def load_documents(paths: Iterable[str | Path], limits: Limits | None = None) -> list[Document]:
    """Every supported file under ``paths``, parsed. Strict: the first file that cannot be used
    raises ``DocumentError`` (``rag.ingest`` takes ``SourceFile``s and reports them instead);
    files of other types met in a folder are passed over."""
    files, skipped = find_files(paths)
    for row in skipped:
        if not row.walked:
            raise DocumentError(f"{row.path}: {row.reason}")
    return [f.load(limits) for f in files]
