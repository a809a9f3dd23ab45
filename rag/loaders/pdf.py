"""PDF → text with PDFium (pypdfium2), the one library that reads Chinese text layers right.

Each page's text comes with the flags PDFium keeps per character: the line breaks and the
spaces it *generated* from gaps in the layout (``2023 年``) are told apart from the spaces the
author typed. Each line keeps its position, and ``layout`` turns the positioned lines into
paragraphs (wraps joined, also across pages; page numbers and running headers dropped).

On the way: a ruled table (only pages that draw enough lines are looked at) is read by
pdfplumber and put in place of its scattered text, one row per line (``rag.loaders.tables``); a
page without a text layer is rendered and read by OCR when the ``ocr`` extra is installed, else
skipped with a note. Before PDFium sees the file, every stream is inflated once with a running cap
(a zip bomb costs nothing but a counter), and the page count is checked before any page is read.
"""

from __future__ import annotations

import io
import re
import zlib
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders import PDF, Extracted, Limits
from rag.loaders import ocr as ocr_loader
from rag.loaders.clean import join_wrapped, unify_radicals
from rag.loaders.layout import GENERATED, Line, assemble, drop_running_lines, tidy_line
from rag.loaders.tables import table_lines as row_texts

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["load"]

LINE = re.compile(r"[^\r\n]+")
VISIBLE = re.compile(r"[^\s\x00-\x1f]")
LAST_VISIBLE = re.compile(r"[^\s\x00-\x1f][\s\x00-\x1f]*$")
CONTROL, DROPPED = re.compile(r"[\x00-\x08\x0b-\x1f]"), "\x01"  # glyphs without a character
STREAM = re.compile(rb"(?<!end)stream(?:\r\n|\n|\r)")
INFLATE_STEP = 1 << 20  # bytes of output per zlib call, so a bomb never sits in memory
FORM_DEPTH = 8  # form XObjects nest; deeper ones are not looked into
RULED_SEGMENTS = 8  # path segments on a page before it may hold a ruled table
OCR_SCALE, OCR_MAX_SIDE = 200 / 72, 2000  # render at 200 dpi, at most 2000 px a side
OCR_INSTALL = "pip install -e '.[ocr]'"
PLACEHOLDER_TITLES = {"", "untitled", "无标题", "無標題"}


def load(data: bytes, name: str, limits: Limits) -> Extracted:
    check_unpacked_size(data, name, limits.max_unpacked_bytes)
    with ExitStack() as stack:
        pdf = open_pdf(data, name)
        stack.callback(pdf.close)
        if len(pdf) > limits.max_pages:
            raise DocumentTooLargeError(f"{name}: {len(pdf):,} pages, over the limit of"
                                        f" {limits.max_pages:,} (RAG_MAX_PAGES)")
        notes: list[str] = []
        pages = list(read_pages(pdf, data, name, limits, notes, stack))
        title = metadata_title(pdf)
    text, starts = assemble(drop_running_lines(pages))
    if not text:
        raise DocumentError(f"{name}: {why_no_text(notes, limits)}")
    check_chars(len(text), name, limits)
    return Extracted(unify_radicals(text), PDF, title or first_line(text), starts, tuple(notes))


def check_unpacked_size(data: bytes, name: str, cap: int) -> None:
    """Inflate every ``stream … endstream`` body that zlib accepts, counting and discarding the
    output, and refuse the file once the total passes ``cap``: PDFium would inflate it all."""
    total = 0
    view = memoryview(data)
    for match in STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        total += inflated_size(view[match.end():end if end >= 0 else len(data)], cap - total)
        if total > cap:
            raise DocumentTooLargeError(f"{name}: its streams inflate to over {cap:,} bytes"
                                        " (RAG_MAX_UNPACKED_BYTES)")


def inflated_size(body: memoryview, cap: int) -> int:
    """Bytes ``body`` inflates to, counting stops just past ``cap``; 0 if it is not zlib data."""
    inflater, size = zlib.decompressobj(), 0
    try:
        for start in range(0, len(body), INFLATE_STEP):
            pending: bytes | memoryview = body[start:start + INFLATE_STEP]
            while pending and size <= cap:
                size += len(inflater.decompress(pending, INFLATE_STEP))
                pending = inflater.unconsumed_tail
            if size > cap or inflater.eof:
                break
    except zlib.error:
        pass  # not Flate data (an image, ASCII85), or damaged: PDFium will judge it
    return size


def open_pdf(data: bytes, name: str) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise DocumentError(f"{name}: encrypted (password-protected) PDF; save a copy without"
                                " the password") from exc
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise DocumentError(f"{name}: encrypted PDF with an unsupported security handler") from exc
        raise DocumentError(f"{name}: not a valid PDF (corrupt or truncated)") from exc


def read_pages(pdf: pdfium.PdfDocument, data: bytes, name: str, limits: Limits, notes: list[str],
               stack: ExitStack) -> Iterator[list[Line]]:
    """Each page's lines, in content order; tables in place, scans through OCR."""
    plumber: Any = None
    chars = scans = 0
    for index in range(len(pdf)):
        page = pdf[index]
        try:
            height = page.get_height()
            lines = text_lines(page, index + 1, height)
            if not lines and drawn(page, pdfium_c.FPDF_PAGEOBJ_IMAGE, 1):
                scans += 1
                lines = scan_lines(page, index + 1, limits, notes, scans > limits.max_ocr_pages)
            elif drawn(page, pdfium_c.FPDF_PAGEOBJ_PATH, RULED_SEGMENTS):
                if plumber is None:
                    plumber = stack.enter_context(open_plumber(data))
                lines = place_tables(lines, table_lines(plumber.pages[index], index + 1))
        finally:
            page.close()
        chars += sum(len(line.text) + 1 for line in lines)
        check_chars(chars, name, limits)  # stop reading early, not after the last page
        yield lines


def text_lines(page: pdfium.PdfPage, number: int, height: float) -> list[Line]:
    """The page's text layer as lines, split where PDFium put its generated line breaks."""
    textpage = page.get_textpage()
    try:
        text = page_text(textpage)
        return [line for match in LINE.finditer(text)
                for line in make_line(textpage, text, match.start(), match.end(), number, height)]
    finally:
        textpage.close()


def page_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's characters, one per char index (one call; char by char where PDFium's text
    view differs from its char list, as it does around characters outside the BMP)."""
    count = textpage.count_chars()
    text = textpage.get_text_range()
    if len(text) != count:
        text = "".join(chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i)) for i in range(count))
    return text


def make_line(textpage: pdfium.PdfTextPage, text: str, start: int, end: int, number: int,
              height: float) -> list[Line]:
    """One ``Line`` for ``text[start:end]``: generated spaces marked, control characters (glyphs
    without a character) dropped, spanning the loose boxes of its first and last visible
    character (tight boxes of fonts without outlines have no height); none if it is blank."""
    first, last = VISIBLE.search(text, start, end), LAST_VISIBLE.search(text, start, end)
    if first is None or last is None:
        return []
    # controls become a same-length stand-in first, so indexes still match PDFium's
    chars = list(CONTROL.sub(DROPPED, text[start:end]))
    for space in re.finditer(" ", text[start:end]):
        if pdfium_c.FPDFText_IsGenerated(textpage.raw, start + space.start()):
            chars[space.start()] = GENERATED
    line = tidy_line("".join(chars).replace(DROPPED, ""))
    if not line:
        return []
    left, bottom, _, top = textpage.get_charbox(first.start(), loose=True)
    _, bottom2, right, top2 = textpage.get_charbox(last.start(), loose=True)
    return [Line(line, left, height - max(top, top2), right, height - min(bottom, bottom2), number)]


def scan_lines(page: pdfium.PdfPage, number: int, limits: Limits, notes: list[str],
               over_budget: bool) -> list[Line]:
    """A page without a text layer: OCR it when we can, else note what was left out."""
    if over_budget:  # seconds a page: a 2,000-page scan would hold the ingest for hours
        notes.append(f"page {number}: no text layer, and OCR already read {limits.max_ocr_pages}"
                     " pages of this file (RAG_MAX_OCR_PAGES)")
        return []
    if not limits.ocr:
        notes.append(f"page {number}: no text layer (OCR is turned off)")
        return []
    if not ocr_loader.available():
        notes.append(f"page {number}: no text layer (install OCR: {OCR_INSTALL})")
        return []
    scale = min(OCR_SCALE, OCR_MAX_SIDE / max(page.get_width(), page.get_height(), 1.0))
    bitmap = page.render(scale=scale)
    try:
        image = bitmap.to_pil()
    finally:
        bitmap.close()
    lines = ocr_loader.read_lines(image, page=number, scale=scale)
    if not lines:
        notes.append(f"page {number}: no text layer, and OCR found no text")
    return lines


def drawn(page: pdfium.PdfPage, kind: int, enough: int) -> bool:
    """Whether the page has ``enough`` objects of ``kind`` (counting a path's segments): images
    for a scan worth OCR (a blank page is not), lines for a ruled table. Cheap: no parsing."""
    count = 0
    for obj_kind, obj in page_objects(page.raw):
        if obj_kind == kind:
            count += pdfium_c.FPDFPath_CountSegments(obj) if kind == pdfium_c.FPDF_PAGEOBJ_PATH else 1
            if count >= enough:
                return True
    return False


def page_objects(parent: Any, form: bool = False, depth: int = 0) -> Iterator[tuple[int, Any]]:
    """(type, raw object) of each object on the page, forms' contents included: raw calls, as
    ``PdfPage.get_objects`` builds a Python object for each of a page's thousands of text runs."""
    count = (pdfium_c.FPDFFormObj_CountObjects if form else pdfium_c.FPDFPage_CountObjects)(parent)
    get = pdfium_c.FPDFFormObj_GetObject if form else pdfium_c.FPDFPage_GetObject
    for i in range(max(count, 0)):
        obj = get(parent, i)
        kind = pdfium_c.FPDFPageObj_GetType(obj)
        yield kind, obj
        if kind == pdfium_c.FPDF_PAGEOBJ_FORM and depth < FORM_DEPTH:
            yield from page_objects(obj, True, depth + 1)


def open_plumber(data: bytes) -> Any:
    import pdfplumber  # only for pages with ruled tables

    return pdfplumber.open(io.BytesIO(data))


def table_lines(plumber_page: Any, number: int) -> list[list[Line]]:
    """Each ruled table on the page (two rows and two columns at least) as block lines, one per
    row with text (``rag.loaders.tables``), each line covering its row's box."""
    tables = []
    for table in plumber_page.find_tables():
        rows = [[cell_text(cell) for cell in row] for row in table.extract()]
        boxes = [box.bbox for row, box in zip(rows, table.rows, strict=True) if "".join(row).strip()]
        if len(rows) < 2 or max(len(row) for row in rows) < 2 or not boxes:
            continue  # a framed paragraph (or an empty frame), not a table
        tables.append([row_line(line, box, number) for line, box in zip(row_texts(rows), boxes, strict=True)])
    return tables


def row_line(text: str, box: tuple[float, float, float, float], number: int) -> Line:
    return Line(text, *box, number, block=True)


def cell_text(cell: str | None) -> str:
    """A cell's text on one line: its wrapped lines joined, pdfplumber's spaces treated as guesses."""
    parts = [tidy_line(part.replace(" ", GENERATED)) for part in (cell or "").split("\n")]
    text = ""
    for part in filter(None, parts):
        text = text + join_wrapped(text, part) + part
    return text


def place_tables(lines: list[Line], tables: list[list[Line]]) -> list[Line]:
    """Put each table's rows where its first line of scattered text was, dropping that text."""
    for rows in tables:
        x0, top = rows[0].x0, rows[0].top
        x1, bottom = rows[-1].x1, rows[-1].bottom
        inside = [x0 <= (line.x0 + line.x1) / 2 <= x1 and top <= (line.top + line.bottom) / 2 <= bottom
                  and not line.block for line in lines]
        at = inside.index(True) if any(inside) else len(lines)
        kept = [line for line, covered in zip(lines, inside, strict=True) if not covered]
        lines = kept[:at] + rows + kept[at:]
    return lines


def why_no_text(notes: list[str], limits: Limits) -> str:
    if not notes:
        return "no text found"
    if not limits.ocr:
        return "no text layer and OCR is turned off (RAG_OCR)"
    if not ocr_loader.available():
        return f"no text layer and OCR is not installed ({OCR_INSTALL})"
    return "no text layer, and OCR found no text"


def check_chars(count: int, name: str, limits: Limits) -> None:
    if count > limits.max_chars:
        raise DocumentTooLargeError(f"{name}: over {limits.max_chars:,} characters of text"
                                    " (RAG_MAX_DOCUMENT_CHARS)")


def metadata_title(pdf: pdfium.PdfDocument) -> str:
    """The Title in the document info, unless it is a placeholder or a file name."""
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", pdf.get_metadata_value("Title").strip())
    if title.lower() in PLACEHOLDER_TITLES or re.search(r"\.(docx?|pptx?|xlsx?|pdf|wps|txt)$", title, re.I):
        return ""
    return title


def first_line(text: str) -> str:
    line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return line if len(line) <= 80 else line[:80] + "…"
