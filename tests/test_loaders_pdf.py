"""The PDF loader on real files: the committed fixtures (tests/fixtures/documents/make_pdfs.py)
and PDFs built here by hand, byte by byte, for what no producer writes on purpose (100,000 pages,
a zip bomb, Kangxi radicals in a text layer)."""

from __future__ import annotations

import io
import time
import zlib
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders import PDF, Limits, Page, extract
from rag.loaders import ocr as ocr_loader
from rag.loaders import pdf as pdf_loader
from rag.loaders.layout import Line, assemble, drop_running_lines

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"
NO_OCR = Limits(ocr=False)

PARAGRAPH = ("秦创原创新驱动平台是陕西省打造的全省创新驱动发展总源头和总平台，"
             "平台自2023年起持续引入人工智能与大模型技术，研发团队还通过OpenAI API等接口"
             "开展了大量实验，并发布了大型语言模型（简称 LLM）的应用示范，"
             "覆盖智能制造、生物医药、新材料等重点产业领域，吸引了"
             "大批科技企业和科研人员入驻，形成了产学研协同创新的良好生态。")
TWO_PAGES = ("秦创原创新驱动平台简介\n" + PARAGRAPH + "\n"
             "秦创原创新驱动平台于2021年3月在西安启动。平台由省科技厅牵头，总部位于西咸新区，目前已汇聚各类创新主体"
             "一万余家，成效十分显著。\n"
             "該平台致力於促進科技成果轉化，推動產學研深度融合。")
TABLE = ("2023年陕西省各市科技投入统计\n"
         "下表列出了部分城市的研发经费投入情况。\n"
         "城市 | 研发经费（亿元） | 同比增长\n"
         "城市: 西安 | 研发经费（亿元）: 612.5 | 同比增长: 8.3%\n"
         "城市: 宝鸡 | 研发经费（亿元）: 45.2 | 同比增长: 6.1%\n"
         "城市: 咸阳 | 研发经费（亿元）: 38.7 | 同比增长: 5.4%\n"
         "数据来源：陕西省统计局。")
INSTALL = "pip install -e '.[ocr]'"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def raw_pdf(*objects: bytes) -> bytes:
    """A PDF from its objects (object 1 is the catalog), with a correct cross-reference table."""
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def stream(data: bytes, keys: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), keys, data)


def one_page(contents: bytes, resources: bytes = b"") -> list[bytes]:
    return [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Resources << %s >> /Contents 4 0 R >>"
            % resources, contents]


def saved(pdf: pdfium.PdfDocument) -> bytes:
    buffer = io.BytesIO()
    pdf.save(buffer)
    return buffer.getvalue()


def reportlab_pdf(draw: object, **canvas_options: object) -> bytes:
    """A one-page PDF drawn by ``draw(canvas)`` in STSong-Light."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=1, **canvas_options)
    canvas.setFont("STSong-Light", 12)
    draw(canvas)  # type: ignore[operator]
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def test_two_pages_reads_as_paragraphs() -> None:
    result = extract(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR)
    assert (result.text, result.media_type, result.notes) == (TWO_PAGES, PDF, ())


def test_generated_spaces_next_to_han_are_dropped_typed_ones_kept() -> None:
    text = pdf_loader.load(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR).text
    assert "平台自2023年起" in text  # PDFium generated "自 2023 年": Helvetica runs set apart
    assert "通过OpenAI API等接口" in text  # "OpenAI⏎API": a wrap between Latin words is one space
    assert "（简称 LLM）" in text  # typed by the author: stays


def test_paragraph_runs_on_across_the_page_break() -> None:
    result = pdf_loader.load(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR)
    assert result.text.split("\n")[1] == PARAGRAPH
    first, second = result.pages
    assert (first, second.number) == (Page(0, 1), 2)
    assert result.text[second.start:].startswith("大批科技企业和科研人员入驻")
    assert result.text[second.start - 3:second.start] == "吸引了"  # inside the joined paragraph


def test_paragraph_ends_short_line_indent_and_vertical_gap() -> None:
    text = pdf_loader.load(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR).text
    assert "良好生态。\n秦创原创新驱动平台于" in text  # a short line after 。, then an indent
    assert "成效十分显著。\n該平台" in text  # a full line, then a blank line's gap
    assert text.startswith("秦创原创新驱动平台简介\n")  # a heading in a larger size


def test_running_header_and_page_numbers_are_dropped() -> None:
    text = pdf_loader.load(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR).text
    assert "秦创原简报" not in text
    assert "- 1 -" not in text and "- 2 -" not in text


def test_title_from_metadata_else_first_line() -> None:
    assert pdf_loader.load(fixture("two_pages.pdf"), "a.pdf", NO_OCR).title == "秦创原创新驱动平台简介"
    # reportlab writes "untitled" when no title is set: a placeholder, not a title
    assert pdf_loader.load(fixture("table.pdf"), "b.pdf", NO_OCR).title == "2023年陕西省各市科技投入统计"


def test_kangxi_radicals_in_the_text_layer_become_unified_characters() -> None:
    codes = {"0001": "2F45", "0002": "7A0B", "0003": "5F0F", "0004": "FF0C", "0005": "2ED3", "0006": "6C5F"}
    cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS"
            b" def /CMapType 2 def 1 begincodespacerange <0000> <FFFF> endcodespacerange %d beginbfchar %s"
            b" endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
            % (len(codes), " ".join(f"<{cid}> <{uni}>" for cid, uni in codes.items()).encode()))
    data = raw_pdf(*one_page(stream(b"BT /F1 12 Tf 20 100 Td <%s> Tj ET" % "".join(codes).encode()),
                             b"/Font << /F1 5 0 R >>"),
                   b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H"
                   b" /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>",
                   b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo"
                   b" << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 1000 >>",
                   stream(cmap))
    assert pdfium.PdfDocument(data)[0].get_textpage().get_text_range() == "⽅程式，⻓江"
    assert pdf_loader.load(data, "kangxi.pdf", NO_OCR).text == "方程式，长江"


def test_fake_bold_overprint_is_read_once() -> None:
    def overprint(canvas: object) -> None:  # LaTeX-style bold: the same run drawn three times
        for dx in (0.0, 0.25, 0.5):
            canvas.drawString(72 + dx, 700, "粗体小标题文字")  # type: ignore[attr-defined]

    assert pdf_loader.load(reportlab_pdf(overprint), "bold.pdf", NO_OCR).text == "粗体小标题文字"


def line(text: str, top: float, page: int = 1, x0: float = 72.0, x1: float = 504.0) -> Line:
    return Line(text, x0, top, x1, top + 12, page)


@pytest.mark.parametrize("footer", ["- 1 -", "第 1 页", "1", "第1页 共3页", "Page 1 of 3", "1 / 3"])
def test_bare_page_number_at_the_page_bottom_is_not_glued_in(footer: str) -> None:
    first = [line("第一段文字写满了整行", 100), line("一直写到页底", 114), line(footer, 800, x0=280, x1=300)]
    second = [line("下一页继续。", 100, page=2, x1=200), line("第二段", 114, page=2, x1=150)]
    text, pages = assemble(drop_running_lines([first, second]))
    assert text == "第一段文字写满了整行一直写到页底下一页继续。\n第二段"
    assert text[pages[1].start:] == "下一页继续。\n第二段"


def test_a_page_whose_only_line_is_a_number_keeps_it() -> None:
    assert assemble(drop_running_lines([[line("2023", 400, x1=110)]]))[0] == "2023"


def test_list_items_start_new_lines_even_after_a_full_line() -> None:
    lines = [line("（一）总体要求：坚持创新驱动发展战略，推动科技成果转化", 100),
             line("（二）主要目标：到2025年建成创新平台，共投入", 114),
             line("3.5亿元专项资金。", 128, x1=250)]  # "3." of a number: not an item
    assert assemble([lines])[0] == ("（一）总体要求：坚持创新驱动发展战略，推动科技成果转化\n"
                                    "（二）主要目标：到2025年建成创新平台，共投入3.5亿元专项资金。")


def test_ruled_table_rows_replace_the_scattered_cells() -> None:
    result = pdf_loader.load(fixture("table.pdf"), "table.pdf", NO_OCR)
    assert result.text == TABLE
    assert result.pages == (Page(0, 1),)


def test_pages_without_ruling_never_open_pdfplumber(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> None:
        raise AssertionError("pdfplumber opened for a page without a ruled table")

    monkeypatch.setattr(pdf_loader, "open_plumber", refuse)
    assert pdf_loader.load(fixture("two_pages.pdf"), "two_pages.pdf", NO_OCR).text == TWO_PAGES


def test_encrypted_pdf_is_refused() -> None:
    from reportlab.lib.pdfencrypt import StandardEncryption

    data = reportlab_pdf(lambda c: c.drawString(72, 700, "机密文件内容"),
                         encrypt=StandardEncryption("secret", ownerPassword="owner"))
    with pytest.raises(DocumentError, match=r"secret\.pdf: encrypted"):
        pdf_loader.load(data, "secret.pdf", NO_OCR)


def test_owner_password_only_still_reads() -> None:
    from reportlab.lib.pdfencrypt import StandardEncryption

    data = reportlab_pdf(lambda c: c.drawString(72, 700, "可以打开的文件"),
                         encrypt=StandardEncryption("", ownerPassword="owner", canCopy=0))
    assert pdf_loader.load(data, "locked.pdf", NO_OCR).text == "可以打开的文件"


@pytest.mark.parametrize("data", [b"%PDF-1.7\nnot a pdf at all", fixture("two_pages.pdf")[:2000],
                                  fixture("two_pages.pdf")[:-40]], ids=["garbage", "half", "no-trailer"])
def test_corrupt_or_truncated_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"bad\.pdf: not a valid PDF \(corrupt or truncated\)"):
        pdf_loader.load(data, "bad.pdf", NO_OCR)


def test_too_many_pages_refused_before_any_page_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    kids = b" ".join([b"3 0 R"] * 100_000)  # one page object, referenced 100,000 times
    data = raw_pdf(b"<< /Type /Catalog /Pages 2 0 R >>",
                   b"<< /Type /Pages /Kids [%s] /Count 100000 >>" % kids,
                   b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    monkeypatch.setattr(pdf_loader, "text_lines", lambda *args: pytest.fail("a page was read"))
    started = time.perf_counter()
    with pytest.raises(DocumentTooLargeError, match="100,000 pages, over the limit of 2,000"):
        pdf_loader.load(data, "many.pdf", Limits(max_pages=2_000))
    assert time.perf_counter() - started < 5


def test_zip_bomb_refused_before_pdfium_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    deflate = zlib.compressobj(9)
    body = b"".join(deflate.compress(bytes(1 << 20)) for _ in range(64)) + deflate.flush()  # 64 MiB → 64 kB
    data = raw_pdf(*one_page(stream(body, b"/Filter /FlateDecode")))
    monkeypatch.setattr(pdf_loader, "open_pdf", lambda *args: pytest.fail("PDFium saw the bomb"))
    with pytest.raises(DocumentTooLargeError, match="inflate to over 10,000,000 bytes"):
        pdf_loader.load(data, "bomb.pdf", Limits(max_unpacked_bytes=10_000_000))


def test_streams_under_the_cap_pass_the_prescan() -> None:
    contents = zlib.compress(b"BT /F1 12 Tf 20 100 Td (hello) Tj ET " * 1000)  # 37 kB inflated
    data = raw_pdf(*one_page(stream(contents, b"/Filter /FlateDecode")))
    pdf_loader.check_unpacked_size(data, "ok.pdf", 40_000)
    with pytest.raises(DocumentTooLargeError):
        pdf_loader.check_unpacked_size(data, "ok.pdf", 30_000)


def test_too_much_text_is_refused() -> None:
    with pytest.raises(DocumentTooLargeError, match="over 100 characters"):
        pdf_loader.load(fixture("two_pages.pdf"), "long.pdf", Limits(max_chars=100, ocr=False))


def test_scan_without_ocr_installed_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: False)
    with pytest.raises(DocumentError, match="no text layer and OCR is not installed") as error:
        pdf_loader.load(fixture("scan.pdf"), "scan.pdf", Limits())
    assert INSTALL in str(error.value)


def test_scan_with_ocr_turned_off() -> None:
    with pytest.raises(DocumentError, match=r"no text layer and OCR is turned off \(RAG_OCR\)"):
        pdf_loader.load(fixture("scan.pdf"), "scan.pdf", NO_OCR)


def test_scanned_page_among_text_pages_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: False)
    merged = pdfium.PdfDocument.new()
    merged.import_pages(pdfium.PdfDocument(fixture("two_pages.pdf")))
    merged.import_pages(pdfium.PdfDocument(fixture("scan.pdf")))
    result = pdf_loader.load(saved(merged), "mixed.pdf", Limits())
    assert result.text == TWO_PAGES
    assert [page.number for page in result.pages] == [1, 2]
    assert result.notes == (f"page 3: no text layer (install OCR: {INSTALL})",)


def test_blank_pdf_has_no_text() -> None:
    data = raw_pdf(*one_page(stream(b"")))
    with pytest.raises(DocumentError, match=r"blank\.pdf: no text found"):
        pdf_loader.load(data, "blank.pdf", Limits())


def test_hundred_text_pages_read_in_seconds() -> None:
    line = "秦创原创新驱动平台是陕西省打造的全省创新驱动发展总源头和总平台"
    page = reportlab_pdf(lambda c: [c.drawString(72, 790 - 15 * i, f"第{i}行：{line}") for i in range(50)])
    book = pdfium.PdfDocument.new()
    book.import_pages(pdfium.PdfDocument(page), [0] * 100)
    data, started = saved(book), time.perf_counter()
    result = pdf_loader.load(data, "book.pdf", NO_OCR)
    elapsed = time.perf_counter() - started
    assert len(result.pages) == 100 and len(result.text) > 100_000
    assert elapsed < 8, f"{100 / elapsed:.0f} pages/s"


def test_scans_past_the_ocr_page_budget_are_noted_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: True)
    monkeypatch.setattr(ocr_loader, "read_lines", lambda *a, **k: pytest.fail("OCR ran past the budget"))
    merged = pdfium.PdfDocument.new()
    merged.import_pages(pdfium.PdfDocument(fixture("two_pages.pdf")))
    merged.import_pages(pdfium.PdfDocument(fixture("scan.pdf")))
    result = pdf_loader.load(saved(merged), "mixed.pdf", Limits(max_ocr_pages=0))
    assert result.text == TWO_PAGES
    assert result.notes == ("page 3: no text layer, and OCR already read 0 pages of this file"
                            " (RAG_MAX_OCR_PAGES)",)
