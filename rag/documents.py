"""Load files into ``Document``s: original text, sha256, and a doc_id from the file stem."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError

__all__ = ["SUPPORTED_SUFFIXES", "Document", "decode", "load_documents"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown")


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    sha256: str
    path: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_text(cls, doc_id: str, text: str, path: str = "") -> Document:
        return cls(doc_id, text, hashlib.sha256(text.encode("utf-8")).hexdigest(), path)


def decode(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else GB18030; binaries and undecodable bytes are refused."""
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{name}: looks like a binary file, not text")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            if encoding == "gb18030" or exc.start < len(data) - 3 or "end of data" not in exc.reason:
                continue
            text = data[:exc.start].decode(encoding)  # UTF-8 cut mid-character: drop the stub
        controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
        if controls > 8:
            raise DocumentError(f"{name}: looks like a binary file, not text")
        return text.replace("\r\n", "\n").replace("\r", "\n")
    raise DocumentError(f"{name}: not valid UTF-8 or GB18030 text")


def _files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise DocumentError(f"{path}: no such file or directory")
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            found.append(path)
        else:
            raise DocumentError(
                f"{path}: unsupported file type {path.suffix or '(none)'};"
                f" supported: {', '.join(SUPPORTED_SUFFIXES)}"
            )
    return found


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Every supported file under ``paths`` (folders walked recursively, dot-folders skipped).

    Raises ``DocumentError`` for a missing path, an unreadable or binary file, or two files
    with the same stem (doc_ids must be unique).
    """
    docs: dict[str, Document] = {}
    for file in _files(Path(p) for p in paths):
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{file}: cannot read ({exc.strerror})") from exc
        text = decode(data, str(file))
        doc = Document(file.stem, text, hashlib.sha256(text.encode("utf-8")).hexdigest(),
                       str(file))
        if doc.doc_id in docs and docs[doc.doc_id].path != doc.path:
            raise DocumentError(
                f"duplicate doc_id {doc.doc_id!r}: {docs[doc.doc_id].path} and {file}"
                " (doc_ids are file stems and must be unique)"
            )
        docs[doc.doc_id] = doc
    return list(docs.values())
