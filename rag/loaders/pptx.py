"""PowerPoint decks (.pptx), read with python-pptx: one page per slide, the slide number as the
page number. A slide reads as its title, then its shapes top to bottom and left to right (groups
opened), a text frame one paragraph per line, a table one row per line (``rag.loaders.tables``:
``cell | cell``, or ``表头: 值 | 表头: 值`` under a header row), and its speaker notes last, as a
line starting ``备注：``. Slides are separated by a blank line; pictures and charts are left out.
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

NOTES_PREFIX = "备注："


def frame_lines(frame: Any) -> Iterator[str]:
    """A text frame's paragraphs, one per line (python-pptx writes a soft line break as ``\\v``)."""
    for paragraph in frame.paragraphs:
        yield paragraph.text.replace("\v", "\n")


def table_rows(table: Any) -> list[list[str]]:
    """One text per column; a merged cell once, ``""`` in the cells it covers (``is_spanned``)."""
    return [["" if cell.is_spanned else " ".join(cell.text.split()) for cell in row.cells]
            for row in table.rows]


def reading_order(shapes: Any) -> list[Any]:
    """Top to bottom, then left to right (the order shapes were added is no guide)."""
    return sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))


def shape_lines(shape: Any) -> Iterator[str]:
    """The text of one shape, opening groups."""
    if getattr(shape, "shapes", None) is not None:  # a group shape
        for child in reading_order(shape.shapes):
            yield from shape_lines(child)
    elif getattr(shape, "has_table", False):
        yield from table_lines(table_rows(shape.table))
    elif getattr(shape, "has_text_frame", False):
        yield from frame_lines(shape.text_frame)


def slide_text(slide: Any) -> str:
    """Title, shapes in reading order, then the speaker notes."""
    title = slide.shapes.title
    lines = list(frame_lines(title.text_frame)) if title is not None else []
    for shape in reading_order(slide.shapes):
        if title is None or shape.shape_id != title.shape_id:
            lines.extend(shape_lines(shape))
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    if notes is not None and notes.text.strip():
        lines.append(NOTES_PREFIX + notes.text.strip().replace("\v", "\n"))
    return tidy(unify_radicals("\n".join(line.strip() for line in lines)))


def deck_title(deck: Any) -> str:
    """The first slide's title, else the document title property."""
    first = deck.slides[0].shapes.title if len(deck.slides) else None
    title = first.text_frame.text if first is not None else ""
    return " ".join((title.strip() or deck.core_properties.title or "").split())


def read(data: bytes, name: str, limits: Limits) -> tuple[list[str], str]:
    """Each slide's text (``""`` for a slide without any) and the deck's title."""
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    if len(deck.slides) > limits.max_pages:
        raise DocumentTooLargeError(f"{name}: {len(deck.slides):,} slides, over the limit of"
                                    f" {limits.max_pages:,} (RAG_MAX_DOCUMENT_PAGES)")
    texts, size = [], 0
    for slide in deck.slides:
        texts.append(slide_text(slide))
        size += len(texts[-1]) + 2
        if size > limits.max_chars:  # stop early: don't read the rest of a huge deck
            raise DocumentTooLargeError(f"{name}: over {limits.max_chars:,} characters"
                                        " (RAG_MAX_DOCUMENT_CHARS)")
    return texts, deck_title(deck)


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    from rag.loaders import PPTX, Extracted, Page

    check_zip(data, name, limits)
    with reading(name, "PowerPoint"):
        slides, title = read(data, name, limits)
    parts: list[str] = []
    pages, notes, offset = [], [], 0
    for number, text in enumerate(slides, start=1):
        if not text:
            notes.append(f"slide {number}: no text")
            continue
        offset += 2 if parts else 0  # the blank line before this slide
        pages.append(Page(offset, number))
        parts.append(text)
        offset += len(text)
    if not parts:
        raise DocumentError(f"{name}: no text")
    return Extracted("\n\n".join(parts), PPTX, unify_radicals(title), tuple(pages), tuple(notes))
