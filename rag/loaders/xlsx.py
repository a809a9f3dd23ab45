"""Excel workbooks (.xlsx), read with openpyxl (read-only, cached formula values). Each sheet is a
heading line ``工作表：<name>``, then one line per non-empty row, read as a table by
``rag.loaders.tables``: when the sheet's first row looks like a header (two or more cells, all
text, no numbers or dates), every later row pairs each value with its column's header
(``年份: 2023 | 营收: 12.5亿元``); otherwise the cells are joined with `` | ``. The header row
itself is kept as a line. Empty cells are left out.

Each line is a page: its number is the sheet's (1-based) and its label names sheet and row
(``财务摘要 第 3 行``), so a citation can point at the row.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders.archive import check_zip, reading
from rag.loaders.clean import unify_radicals
from rag.loaders.tables import table_lines

if TYPE_CHECKING:
    from rag.loaders import Extracted, Limits, Page

__all__ = ["load"]

HEADING = "工作表：{}"
MAX_ROWS = 200_000  # row lines in a workbook: past this it is a database export, not a document


def show(cell: Any) -> str:
    """A cell's value as Excel shows it: ``12`` not ``12.0``, dates in ISO form, ``41.2%`` for a
    percentage format, at most 15 significant digits (Excel's own precision)."""
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | float):
        if str(getattr(cell, "number_format", "")).endswith("%"):
            return f"{value * 100:.15g}%"
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    return " ".join(str(value).split())  # a cell's own line breaks would split its row


def sheet_lines(sheet: Any, check: Callable[[int, int], None]) -> list[tuple[int, str]]:
    """``(row number, line)`` for each non-empty row of one sheet. ``check(rows, chars)`` is
    called as rows are read, with no more characters than their lines will hold, so that a huge
    sheet is refused before all of it is read."""
    sheet.reset_dimensions()  # a declared A1:XFD1048576 would pad every row to 16,384 cells
    numbers: list[int] = []
    rows: list[list[str]] = []
    chars = 0
    for number, row in enumerate(sheet.iter_rows(min_row=1), start=1):
        values = [show(cell) for cell in row]
        if any(values):
            numbers.append(number)
            rows.append(values)
            filled = [text for text in values if text]
            chars += sum(map(len, filled)) + 3 * len(filled) - 2  # ``a | b`` and its newline
            check(len(rows), chars)
    return list(zip(numbers, table_lines(rows), strict=True))  # one line per non-empty row


def read(data: bytes, name: str, limits: Limits) -> tuple[list[str], list[Page], str]:
    """The workbook's lines, one page per line, and its title; refuses as soon as a limit is
    passed rather than after building the whole text."""
    from openpyxl import load_workbook

    from rag.loaders import Page

    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    lines: list[str] = []
    pages: list[Page] = []
    offset = 0  # where the next line starts in the joined text
    try:
        for sheet_number, sheet in enumerate(book.worksheets, start=1):
            rows = sheet_lines(sheet, size_check(name, limits, len(lines), offset))
            if not rows:
                continue  # an empty sheet: no heading either
            for row_number, line in [(0, HEADING.format(sheet.title)), *rows]:
                label = f"{sheet.title} 第 {row_number} 行" if row_number else sheet.title
                pages.append(Page(offset, sheet_number, label))
                lines.append(line)
                offset += len(line) + 1
                check_size(name, len(lines), offset, limits)
        title = book.properties.title or ""
    finally:
        book.close()  # read-only mode keeps the archive open until closed
    return lines, pages, title


def size_check(name: str, limits: Limits, rows: int, chars: int) -> Callable[[int, int], None]:
    """``check_size`` for a sheet's rows and characters, after those read so far."""
    return lambda more_rows, more_chars: check_size(name, rows + more_rows, chars + more_chars, limits)


def check_size(name: str, rows: int, chars: int, limits: Limits) -> None:
    if rows > MAX_ROWS:
        raise DocumentTooLargeError(f"{name}: over {MAX_ROWS:,} rows")
    if chars > limits.max_chars:
        raise DocumentTooLargeError(f"{name}: over {limits.max_chars:,} characters"
                                    " (RAG_MAX_DOCUMENT_CHARS)")


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    from rag.loaders import XLSX, Extracted

    check_zip(data, name, limits)
    with reading(name, "Excel"):
        lines, pages, title = read(data, name, limits)
    if not lines:
        raise DocumentError(f"{name}: no text")
    return Extracted(unify_radicals("\n".join(lines)), XLSX, unify_radicals(title.strip()), tuple(pages))
