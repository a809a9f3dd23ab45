"""Plain text and Markdown: decoded as they are (UTF-8 with or without BOM, else GB18030)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.errors import DocumentError, DocumentTooLargeError

if TYPE_CHECKING:
    from rag.loaders import Extracted, Limits

__all__ = ["decode", "load"]


def decode(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), else GB18030; binaries and undecodable bytes are refused."""
    if b"\x00" in data:  # anywhere: a binary with a text-like first page is still a binary
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


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    from rag.loaders import MARKDOWN, TEXT, Extracted

    text = decode(data, name)
    if len(text) > limits.max_chars:
        raise DocumentTooLargeError(f"{name}: {len(text):,} characters, over the limit of"
                                    f" {limits.max_chars:,} (RAG_MAX_DOCUMENT_CHARS)")
    markdown = name.lower().endswith((".md", ".markdown"))
    title = next((line.lstrip("#").strip() for line in text.split("\n")
                  if line.startswith("# ")), "") if markdown else ""
    return Extracted(text, MARKDOWN if markdown else TEXT, title)
