"""Turn a file's bytes into text a citation can quote, plus a page table.

One module per format (``text``, ``pdf``, ``docx``, ``pptx``, ``xlsx``, ``html``, ``ocr``); this
module sniffs the format from the bytes (a suffix only breaks ties: ``.md`` vs ``.txt``, or HTML
saved as ``.txt``) and dispatches. Every loader returns an ``Extracted``: the text that becomes the
document's original text (so ``quote == text[start:end]`` holds by construction), the media type,
a title, and ``pages``: where each page, slide or sheet row starts in that text.

A loader raises ``DocumentError`` (``UnsupportedFormatError`` for a type we do not read,
``DocumentTooLargeError`` for input over ``Limits``) and never returns half a document.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from importlib import import_module

from rag.errors import UnsupportedFormatError

__all__ = ["MEDIA_TYPES", "SUFFIXES", "TEXT_TYPES", "Extracted", "Limits", "Page", "extract",
           "page_at", "sniff", "where"]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
PNG, JPEG, TIFF, BMP, WEBP = "image/png", "image/jpeg", "image/tiff", "image/bmp", "image/webp"

TEXT_TYPES = frozenset({TEXT, MARKDOWN, HTML})  # formats a text editor saves under any suffix
# media type -> loader module (in this package)
MEDIA_TYPES: dict[str, str] = {
    PDF: "pdf", DOCX: "docx", PPTX: "pptx", XLSX: "xlsx", HTML: "html", MARKDOWN: "text",
    TEXT: "text", PNG: "ocr", JPEG: "ocr", TIFF: "ocr", BMP: "ocr", WEBP: "ocr",
}
# what a folder walk picks up (by suffix; the content is sniffed again before loading)
SUFFIXES: dict[str, str] = {
    ".txt": TEXT, ".text": TEXT, ".md": MARKDOWN, ".markdown": MARKDOWN, ".pdf": PDF,
    ".docx": DOCX, ".pptx": PPTX, ".xlsx": XLSX, ".xlsm": XLSX, ".html": HTML, ".htm": HTML,
    ".xhtml": HTML, ".png": PNG, ".jpg": JPEG, ".jpeg": JPEG, ".tif": TIFF, ".tiff": TIFF,
    ".bmp": BMP, ".webp": WEBP,
}


@dataclass(frozen=True)
class Page:
    """``text[start:]`` begins page (slide, sheet) ``number``, 1-based; ``label`` says more
    where a number alone does not (a sheet's name and row: ``销售 第 5 行``)."""

    start: int
    number: int
    label: str = ""


@dataclass(frozen=True)
class Extracted:
    text: str
    media_type: str
    title: str = ""
    pages: tuple[Page, ...] = ()  # empty for formats without pages (text, HTML, Word)
    notes: tuple[str, ...] = ()  # what was left out and why ("page 3: no text layer; …")
    tags: tuple[str, ...] = ()  # from the file itself (Markdown front matter)


@dataclass(frozen=True)
class Limits:
    """What one file may cost. Over a limit the file is refused (``DocumentTooLargeError``)."""

    max_pages: int = 2_000
    max_chars: int = 5_000_000  # extracted characters
    max_unpacked_bytes: int = 200_000_000  # zip members and PDF streams, decompressed
    ocr: bool = True  # read pages without a text layer with OCR when the extra is installed
    max_ocr_pages: int = 100  # OCR takes seconds a page: the rest of a long scan is noted, not read


def page_at(pages: tuple[Page, ...] | list[Page], offset: int) -> Page | None:
    """The page holding character ``offset`` (``None`` for a document without pages).

    >>> page_at((Page(0, 1), Page(10, 2)), 12).number
    2
    """
    if not pages:
        return None
    i = bisect.bisect_right([p.start for p in pages], offset) - 1
    return pages[max(i, 0)]


def where(pages: tuple[Page, ...] | list[Page], offset: int, media_type: str) -> dict[str, object]:
    """``{"page": 3, "location": "第 3 页"}`` for the character at ``offset``; ``{}`` without pages.

    >>> where((Page(0, 1), Page(9, 2)), 9, PPTX)
    {'page': 2, 'location': '第 2 张幻灯片'}
    """
    page = page_at(pages, offset)
    if page is None:
        return {}
    unit = "张幻灯片" if media_type == PPTX else "页"
    return {"page": page.number, "location": page.label or f"第 {page.number} {unit}"}


def sniff(data: bytes, name: str = "") -> str:
    """The media type of ``data``, from its bytes; the suffix of ``name`` only where the bytes
    allow several (plain text vs Markdown). Raises ``UnsupportedFormatError`` otherwise."""
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    head = data[:2048]
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return PDF
    if data.startswith(b"PK\x03\x04"):
        # OOXML: the part names sit in the zip's local headers and central directory, in clear
        for marker, kind in ((b"word/", DOCX), (b"ppt/", PPTX), (b"xl/", XLSX)):
            if marker in data:
                return kind
        raise UnsupportedFormatError(f"{name or 'the file'}: a zip archive that is not a Word,"
                                     " PowerPoint or Excel file")
    for magic, kind in ((b"\x89PNG\r\n\x1a\n", PNG), (b"\xff\xd8\xff", JPEG), (b"II*\x00", TIFF),
                        (b"MM\x00*", TIFF), (b"BM", BMP)):
        if data.startswith(magic):
            return kind
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    for magic, what in ((b"\xd0\xcf\x11\xe0", "an old binary Office file (.doc/.xls/.ppt): save"
                         " it as .docx/.xlsx/.pptx"), (b"{\\rtf", "an RTF file"),
                        (b"\x1f\x8b", "a gzip archive"), (b"Rar!", "a RAR archive"),
                        (b"7z\xbc\xaf", "a 7z archive"), (b"GIF8", "a GIF image")):
        if data.startswith(magic):
            raise UnsupportedFormatError(f"{name or 'the file'}: {what}, which wenda does not read")
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or (
            suffix in (".html", ".htm", ".xhtml") and lowered.startswith(b"<")):
        return HTML
    if b"\x00" in head and SUFFIXES.get(suffix) not in TEXT_TYPES:  # a .txt says why it's no text
        raise UnsupportedFormatError(f"{name or 'the file'}: a binary file of a type wenda does"
                                     " not read")
    return MARKDOWN if suffix in (".md", ".markdown") else TEXT


def extract(data: bytes, name: str = "", limits: Limits | None = None) -> Extracted:
    """Sniff ``data`` and run its loader: ``Extracted`` text, page table and notes."""
    media_type = sniff(data, name)
    module = import_module(f"{__name__}.{MEDIA_TYPES[media_type]}")
    result: Extracted = module.load(data, name, limits or Limits())
    return result

