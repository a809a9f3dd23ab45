"""Plain text and Markdown: decoded as they are (UTF-8 with or without BOM, else GB18030).

A Markdown file may open with front matter (``---`` lines around ``title:`` and ``tags:``): its
title and tags become the document's, and the block is left out of the text."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rag.errors import DocumentError, DocumentTooLargeError

if TYPE_CHECKING:
    from rag.loaders import Extracted, Limits

__all__ = ["decode", "front_matter", "load"]

_FRONT = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.S)
_FIELD = re.compile(r"^(title|tags)[ \t]*:[ \t]*(.*)$")


def front_matter(text: str) -> tuple[int, str, tuple[str, ...]]:
    """Length, title and tags of a leading YAML-style block (0, "", () when there is none).
    Only ``title: x`` and ``tags: [a, b]`` / ``tags: a, b`` / a ``- a`` list are read: a YAML
    library would accept far more than documents need, and this must never fail an ingest."""
    m = _FRONT.match(text)
    if not m:
        return 0, "", ()
    title, tags, listing = "", [], False
    for line in m.group(1).split("\n"):
        field = _FIELD.match(line.strip())
        if field:
            listing = field.group(1) == "tags" and not field.group(2).strip()
            value = field.group(2).strip()
            if field.group(1) == "title":
                title = value.strip("'\"")
            else:
                tags += [t.strip().strip("'\"") for t in value.strip("[]").split(",")]
        elif listing and line.strip().startswith("- "):
            tags.append(line.strip()[2:].strip().strip("'\""))
        elif line.strip():
            listing = False
    return m.end(), title, tuple(t for t in tags if t)


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
    if not markdown:
        return Extracted(text, TEXT)
    end, title, tags = front_matter(text)
    text = text[end:]
    title = title or next((line.lstrip("#").strip() for line in text.split("\n")
                           if line.startswith("# ")), "")
    return Extracted(text, MARKDOWN, title, tags=tags)
