"""Word documents (.docx), read with python-docx: the body's paragraphs and tables in order, one
paragraph per line and one table row per line (``rag.loaders.tables``: ``cell | cell``, or
``表头: 值 | 表头: 值`` under a header row). Headings stay as their text.
Text boxes, headers, footers and footnotes are left out. Word has no fixed pages, so ``pages`` is
empty.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders.archive import check_zip, reading
from rag.loaders.clean import tidy, unify_radicals
from rag.loaders.tables import table_lines

if TYPE_CHECKING:
    from rag.loaders import Extracted, Limits

__all__ = ["load"]


def cell_text(cell: Any) -> str:
    """A cell's paragraphs on one line, so that a table row stays one line."""
    return " ".join(p.text.strip() for p in cell.paragraphs if p.text.strip())


def row_cells(row: Any) -> list[str]:
    """One text per column; a merged cell once, ``""`` in the other columns it spans (python-docx
    repeats the cell for each of them)."""
    texts, previous = [], None
    for cell in row.cells:
        texts.append(cell_text(cell) if cell is not previous else "")
        previous = cell
    return texts


def is_heading(paragraph: Any) -> bool:
    name = paragraph.style.name if paragraph.style is not None else ""
    return str(name).lower().startswith(("heading", "title"))


def body_lines(document: Any) -> Iterator[tuple[str, bool]]:
    """Each line of the body, in order, with whether it is a heading."""
    from docx.table import Table

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            yield from ((line, False) for line in table_lines([row_cells(row) for row in block.rows]))
        else:
            yield block.text, is_heading(block)


def read(data: bytes, name: str, limits: Limits) -> tuple[list[str], str]:
    """The document's non-empty lines and its title."""
    from docx import Document

    document = Document(io.BytesIO(data))
    lines, first_heading, size = [], "", 0
    for line, heading in body_lines(document):
        line = line.strip()
        if not line:
            continue
        lines.append(line)
        first_heading = first_heading or (line if heading else "")
        size += len(line) + 1
        if size > limits.max_chars:  # stop early: don't build the whole string first
            raise DocumentTooLargeError(f"{name}: over {limits.max_chars:,} characters"
                                        " (RAG_MAX_DOCUMENT_CHARS)")
    title = (document.core_properties.title or "").strip() or first_heading or next(iter(lines), "")
    return lines, title


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    from rag.loaders import DOCX, Extracted

    check_zip(data, name, limits)
    with reading(name, "Word"):
        lines, title = read(data, name, limits)
    text = tidy(unify_radicals("\n".join(lines)))
    if not text:
        raise DocumentError(f"{name}: no text")
    return Extracted(text, DOCX, unify_radicals(title.split("\n")[0].strip()))
