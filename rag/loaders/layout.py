"""Positioned lines → paragraphs: the one layout step shared by PDF text layers and OCR.

A PDF (or a scan) knows lines, not paragraphs. Two neighbouring lines are one paragraph unless
the geometry or the punctuation says otherwise: the first line stops well short of the text
block's right edge (or short and after 。！？), the next line is indented, set in another size,
starts a list item, or sits below a clear vertical gap. Lines of one paragraph are joined by
``clean.join_wrapped`` (nothing between Han characters, one space between Latin words), also
across a page break, and ``Page.start`` then points inside that paragraph.

Page numbers and running headers/footers (the same short line at the top or bottom of most pages)
are dropped first, so they neither end up in the text nor glue two halves of a paragraph apart.
Coordinates are in points with y growing downwards (``top < bottom``), as OCR boxes are.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from rag.loaders import Page
from rag.loaders.clean import is_wide, join_wrapped

__all__ = ["GENERATED", "Line", "assemble", "drop_running_lines", "tidy_line"]


@dataclass(frozen=True)
class Line:
    """One line of text on page ``page`` (1-based); ``block`` lines (table rows) stand alone."""

    text: str
    x0: float
    top: float
    x1: float
    bottom: float
    page: int
    block: bool = False

    @property
    def em(self) -> float:
        return max(self.bottom - self.top, 1.0)


@dataclass(frozen=True)
class Frame:
    """Where the text block's edges are, and the usual gap between two lines of a paragraph."""

    left: float
    right: float
    gap: float


PAGE_NUMBER = re.compile(r"[-–—·\s]*(?:第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?|\d+\s*/\s*\d+|\d+"
                         r"|[Pp]age\s*\d+(?:\s*of\s*\d+)?)[-–—·\s]*")
LIST_ITEM = re.compile(r"(?:[（(]?[0-9一二三四五六七八九十]{1,3}(?:[)）、]|[.．](?!\d))|[•·●○■□▪◆◇]"
                       r"|第[一二三四五六七八九十百0-9]+[章节条款部分])")
SENTENCE_END = tuple("。！？!?：:…")
CLOSERS = "”’」』）)】》\"'"
PAGE_FRAME_LINES = 8  # lines a page needs for its own margins (mirrored margins, odd page sizes)
SPACES = re.compile("[ \t\u00a0\x00]+")
GENERATED = "\x00"  # marks a space the PDF producer or OCR guessed from a gap; the author typed none


def tidy_line(text: str) -> str:
    """Collapse runs of spaces, and drop a GENERATED one that touches a wide character: PDF
    producers and OCR see a gap between Han and Latin text (``2023 年``) where none was typed.

    >>> tidy_line(" 通过_OpenAI_API_等 简称 LLM ".replace("_", GENERATED))
    '通过OpenAI API等 简称 LLM'
    """
    def space(match: re.Match[str]) -> str:
        before, after = text[match.start() - 1:match.start()], text[match.end():match.end() + 1]
        typed = any(ch != GENERATED for ch in match.group())
        return " " if typed or not (is_wide(before or "a") or is_wide(after or "a")) else ""

    return SPACES.sub(space, text).strip()


def drop_running_lines(pages: list[list[Line]]) -> list[list[Line]]:
    """Drop bare page numbers and headers/footers repeated on most pages, looking only at each
    page's topmost and bottommost line (the margins), and only on pages with other text."""
    edges = [edge_lines(page) for page in pages]
    seen = Counter(key for page_edges in edges for key in {running_key(line) for line in page_edges})
    need = max(2, (len(pages) + 1) // 2)

    def running(line: Line) -> bool:
        key = running_key(line)
        return PAGE_NUMBER.fullmatch(line.text) is not None or (len(key) <= 40 and seen[key] >= need)

    return [[line for line in page if not (line in page_edges and running(line))]
            for page, page_edges in zip(pages, edges, strict=True)]


def edge_lines(page: list[Line]) -> list[Line]:
    body = [line for line in page if not line.block]
    if len(body) < 2:
        return []  # a page's only line is its content, not a margin
    return [min(body, key=lambda line: line.top), max(body, key=lambda line: line.bottom)]


def running_key(line: Line) -> str:
    return re.sub(r"\d+", "#", line.text.replace(" ", ""))


def measure(lines: list[Line]) -> Frame:
    """The block's left and right edges (a low and high percentile, so one odd line does not
    move them) and the median gap between consecutive lines on a page."""
    body = [line for line in lines if not line.block] or lines
    lefts, rights = sorted(line.x0 for line in body), sorted(line.x1 for line in body)
    gaps = [b.top - a.bottom for a, b in itertools.pairwise(body)
            if a.page == b.page and b.top > a.top]
    return Frame(left=lefts[len(lefts) // 10], right=rights[(len(rights) * 9) // 10],
                 gap=statistics.median(gaps) if gaps else 0.0)


def ends_paragraph(a: Line, b: Line, frames: dict[int, Frame]) -> bool:
    """Whether line ``b`` starts a new paragraph after line ``a``."""
    if a.block or b.block or abs(a.em - b.em) > 0.2 * max(a.em, b.em):
        return True  # a table, or a heading set in another size
    em, frame = a.em, frames[a.page]
    short = frame.right - a.x1
    if short > 4 * em or (short > em and a.text.rstrip(CLOSERS).endswith(SENTENCE_END)):
        return True
    if b.x0 - frames[b.page].left > 1.5 * em or LIST_ITEM.match(b.text):
        return True
    return a.page == b.page and b.top > a.top and b.top - a.bottom > frame.gap + 0.6 * em


def assemble(pages: list[list[Line]]) -> tuple[str, tuple[Page, ...]]:
    """The text of ``pages`` (lines in reading order, page by page) as paragraphs, one per line,
    and where each page with text starts in it.

    >>> a = Line("研发团队通过OpenAI", 72, 100, 504, 112, page=1)
    >>> b = Line("API等接口开展实验。", 72, 118, 300, 130, page=2)
    >>> text, pages = assemble([[a], [b]])
    >>> text, [page.start for page in pages], text[pages[1].start:]
    ('研发团队通过OpenAI API等接口开展实验。', [0, 13], 'API等接口开展实验。')
    """
    lines = [line for page in pages for line in page if line.text]
    if not lines:
        return "", ()
    whole = measure(lines)  # pages with a few lines only are measured with the rest
    frames = {page[0].page: measure(page) if len(page) >= PAGE_FRAME_LINES else whole
              for page in pages if page}
    text, starts = lines[0].text, {lines[0].page: 0}  # page number -> where its text starts
    for previous, line in itertools.pairwise(lines):
        text += "\n" if ends_paragraph(previous, line, frames) else join_wrapped(previous.text, line.text)
        starts.setdefault(line.page, len(text))
        text += line.text
    return text, tuple(Page(start, number) for number, start in starts.items())
