"""Web pages: the article's text, without the navigation, footer and cookie banner around it.

trafilatura finds the main content (paragraphs, headings, tables). It turns every newline inside
a ``<p>`` into a space, which puts a false space into each wrapped line of Chinese source
(``实施 密切相关``), so those newlines are resolved in the tree first, with
``clean.join_wrapped``: nothing between Chinese characters, one space between Latin words. A
page too small for trafilatura falls back to the visible text of ``<body>``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders.clean import join_wrapped, tidy, unify_radicals
from rag.loaders.tables import table_lines

if TYPE_CHECKING:
    from rag.loaders import Extracted, Limits

__all__ = ["decode", "load"]

_DECLARED = re.compile(rb"""<(?:meta|\?xml)[^>]*?(?:charset|encoding)\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""",
                       re.IGNORECASE)
# GB2312 and GBK pages are decoded as GB18030, their superset (browsers do the same)
_GB = {"gb2312", "gbk", "x-gbk", "gb_2312-80", "csgb2312", "cp936"}
_WRAP = re.compile(r"[ \t\r]*\n\s*")
_RAW = {"pre", "textarea", "script", "style"}  # where a newline means a newline
_BLOCKS = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "section", "article",
           "main", "blockquote", "pre", "dd", "dt", "ul", "ol", "br", "hr", "form", "figcaption"}
_HIDDEN = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside")
# below trafilatura's MIN_EXTRACTED_SIZE its default mode dumps the whole page, menus included and
# one text node per line (``详情参见\n年度报告\n全文``); its precise mode skips that dump
SHORT = 250
_TABLE_RULE = re.compile(r"^\|(?:\s*-+\s*\|)+$")
_CELL_BAR = re.compile(r"(?<!\\)\|")  # trafilatura writes a ``|`` inside a cell as ``\|``


def decode(data: bytes, name: str) -> str:
    """The page as text: a UTF-8 BOM, else the declared charset, else UTF-8, else GB18030."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    found = _DECLARED.search(data[:4096])
    declared = found.group(1).decode("ascii").lower() if found else ""
    if declared in _GB:
        declared = "gb18030"
    elif declared.startswith(("utf-16", "utf-32")):
        declared = "utf-8"  # bytes we could read the ASCII tag from are not UTF-16 (browsers agree)
    for encoding in filter(None, (declared, "utf-8", "gb18030")):
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")  # mostly UTF-8 with a few bad bytes: keep it


def parse(text: str, name: str) -> Any:
    """An lxml tree of the page (re-encoded, so an ``<?xml encoding=…?>`` line cannot object)."""
    import lxml.html
    from lxml import etree

    try:
        return lxml.html.fromstring(text.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise DocumentError(f"{name}: not a readable web page ({exc})") from exc


def text_slots(root: Any) -> Iterator[tuple[Any, str]]:
    """Each ``(element, "text" | "tail")`` holding page text, in reading order, skipping the
    inside of ``<pre>``, ``<script>`` and the like."""
    from lxml import etree

    raw_depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""  # comments and PIs: only their tail is text
        if event == "start":
            raw_depth += tag in _RAW
            if tag and not raw_depth:
                yield el, "text"
        else:
            raw_depth -= tag in _RAW
            if el is not root and not raw_depth:
                yield el, "tail"


def unwrap_lines(root: Any) -> None:
    """Replace each newline run inside running text with what ``join_wrapped`` says belongs
    between its neighbours, which may sit in the text next door (``幼鱼\n<b>1,286</b>``)."""
    slots = list(text_slots(root))
    texts = [getattr(el, attr) or "" for el, attr in slots]
    before, after = nearest_text(texts), nearest_text(texts[::-1])[::-1]
    for (el, attr), text, left, right in zip(slots, texts, before, after, strict=True):
        if "\n" in text:
            setattr(el, attr, unwrap(text, left, right))


def nearest_text(texts: list[str]) -> list[str]:
    """For each slot, the closest earlier slot with something other than whitespace."""
    found, last = [], ""
    for text in texts:
        found.append(last)
        last = text if text.strip() else last
    return found


def unwrap(text: str, left: str, right: str) -> str:
    """``text`` with its newline runs joined; ``left``/``right``: the text around it."""
    def join(m: re.Match[str]) -> str:
        return join_wrapped(text[:m.start()] or left, text[m.end():] or right)
    return _WRAP.sub(join, text)


def main_text(root: Any, precise: bool = False) -> str:
    """trafilatura's article text, its tables (``| a | b |`` lines) read by ``table_lines`` like
    the other loaders' tables."""
    import trafilatura

    found = trafilatura.extract(copy.deepcopy(root), output_format="txt", include_tables=True,
                                include_comments=False, include_links=False, include_images=False,
                                favor_precision=precise)
    lines: list[str] = []
    table: list[list[str]] = []  # the rows of the table being read
    for line in (found or "").split("\n"):
        line = line.strip()
        if _TABLE_RULE.match(line):
            continue  # the |---|---| line under a table's header
        if line.startswith("|") and line.endswith("|") and len(line) > 1:
            table.append([cell.replace("\\|", "|") for cell in _CELL_BAR.split(line[1:-1])])
            continue
        lines.extend(table_lines(table))
        table = []
        lines.append(line)
    lines.extend(table_lines(table))
    return "\n".join(lines)


def table_text(table: Any) -> str:
    """An HTML table's lines (``table_lines``); a cell spanning columns is followed by empty ones,
    so that later cells stay under their own column's header."""
    rows = []
    for tr in table.iter("tr"):
        row: list[str] = []
        for cell in (cell for cell in tr if cell.tag in ("td", "th")):
            span = str(cell.get("colspan", "")).strip()
            row.append(" ".join(str(cell.text_content()).split()))
            row += [""] * (min(int(span), 1000) - 1 if span.isdigit() else 0)  # browsers' cap: 1000
        rows.append(row)
    return "\n".join(table_lines(rows))


def visible_text(root: Any) -> str:
    """The text of ``<body>`` less its navigation, one block per line: the fallback for a page
    too small for trafilatura to call anything its main content."""
    from lxml import etree

    body = root.find(".//body")
    body = root if body is None else body
    etree.strip_elements(body, *_HIDDEN, etree.Comment, with_tail=False)
    for table in reversed(list(body.iterdescendants("table"))):  # a table inside a cell first
        text = etree.Element("div")
        text.text, text.tail = table_text(table), table.tail
        table.getparent().replace(table, text)
    for el in body.iter():
        if isinstance(el.tag, str) and el.tag in _BLOCKS:
            el.tail = "\n" + (el.tail or "")
    return "\n".join(line.strip() for line in str(body.text_content()).split("\n"))


def page_title(root: Any) -> str:
    """trafilatura's title (the one ``<h1>``, else title metadata, else ``<title>`` without the
    site name). Not ``extract_metadata``: its date search loads every dateparser locale, 10 s."""
    from trafilatura.metadata import extract_title

    title = extract_title(copy.deepcopy(root))
    if not title:
        found = root.find(".//title")
        title = found.text_content() if found is not None else ""
    return " ".join(str(title).split())


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    from rag.loaders import HTML, Extracted

    root = parse(decode(data, name), name)
    unwrap_lines(root)
    text = tidy(unify_radicals(main_text(root)))
    if len(text) < SHORT:
        text = tidy(unify_radicals(main_text(root, precise=True)))
    if not text.strip():
        text = tidy(unify_radicals(visible_text(root)))
    if not text.strip():
        raise DocumentError(f"{name}: no text")
    if len(text) > limits.max_chars:
        raise DocumentTooLargeError(f"{name}: {len(text):,} characters, over the limit of"
                                    f" {limits.max_chars:,} (RAG_MAX_DOCUMENT_CHARS)")
    return Extracted(text, HTML, page_title(root))
