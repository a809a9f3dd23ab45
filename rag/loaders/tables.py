"""Table rows as text lines, the same for every loader (Word, PowerPoint, Excel, web pages, PDF).

A table whose first row looks like a header (two or more non-empty cells, all of them text rather
than numbers or dates, and at least one row under it) keeps that row as a line, then reads each
later row as ``表头: 值 | 表头: 值``; any other table reads one row per line, ``值 | 值``. Empty
cells are left out and rows without any text dropped, so there is one line per row with text.

Callers pass each row's cells as strings, one per column: a merged cell's text once, with ``""``
in the columns it also covers, so that every value stays under its own column's header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["is_form", "looks_like_header", "table_lines"]

# a value, not a column name: no letters at all (2022, 41.2%, 2023-03-28), an amount in 万/亿/元,
# or a date written with 年月日 (a bare ``2022年`` is a column name as often as a value)
_NUMBER_OR_DATE = re.compile(r"[\d\W_]*|[-+−]?[¥$￥€£]?\d[\d.,]*\s*(?:万亿|[万亿千百])?(?:美元|元)?"
                             r"|\d{2,4}年\d{1,2}月(?:\d{1,2}日)?|\d{1,2}月\d{1,2}日")


def is_text(cell: str) -> bool:
    """Whether a cell reads as a name rather than a number or date.

    >>> [is_text(c) for c in ["营收", "2022年", "Q1", "2022", "41.2%", "2023-03-28", "12.5亿元", "3月5日"]]
    [True, True, True, False, False, False, False, False]
    """
    return not _NUMBER_OR_DATE.fullmatch(cell)


def looks_like_header(row: Sequence[str]) -> bool:
    """Two or more non-empty cells, every one of them text.

    >>> looks_like_header(["年份", "监测数量（尾）"]), looks_like_header(["上海", "36"])
    (True, False)
    """
    filled = [cell for cell in row if cell]
    return len(filled) >= 2 and all(is_text(cell) for cell in filled)


def pairs(row: Sequence[str], header: Sequence[str]) -> str:
    """``表头: 值 | 表头: 值``; a value under an empty (or no) header stands bare."""
    heads = [header[i] if i < len(header) else "" for i in range(len(row))]
    return " | ".join(f"{head}: {cell}" if head else cell for head, cell in zip(heads, row, strict=True)
                      if cell)


def is_form(rows: list[list[str]]) -> bool:
    """Two columns whose left cells are all names (单位名称 | …, 地址 | …): a form of label-value
    rows, where the first row is data like the rest, not a header.

    >>> is_form([["单位名称", "长江水产研究所"], ["地址", "武汉市"]])
    True
    >>> is_form([["年份", "数量"], ["2022", "5"]])
    False
    """
    return all(len(row) == 2 and row[0] and is_text(row[0]) for row in rows)


def table_lines(rows: list[list[str]]) -> list[str]:
    """One line per row with any text, in order.

    >>> table_lines([["年份", "监测数量（尾）"], ["2022", "563"], ["", ""], ["2023", "874"]])
    ['年份 | 监测数量（尾）', '年份: 2022 | 监测数量（尾）: 563', '年份: 2023 | 监测数量（尾）: 874']
    >>> table_lines([["季度", "", "营收"], ["第一季", "第一季", "3.2"]])
    ['季度 | 营收', '季度: 第一季 | 第一季 | 营收: 3.2']
    >>> table_lines([["上海", "36", ""], ["成都", "", "12"]])
    ['上海 | 36', '成都 | 12']
    >>> table_lines([["名", "值"]])
    ['名 | 值']
    """
    cleaned = [[cell.strip() for cell in row] for row in rows]
    kept = [row for row in cleaned if any(row)]
    # a row must carry its column names to be found, and understood, without the rows above it
    header = kept[0] if len(kept) >= 2 and looks_like_header(kept[0]) and not is_form(kept) else []
    lines = []
    for index, row in enumerate(kept):
        lines.append(pairs(row, header) if header and index else " | ".join(filter(None, row)))
    return lines
