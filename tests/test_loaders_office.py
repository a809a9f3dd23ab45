"""Word, PowerPoint and Excel loaders on the committed fixtures (tests/fixtures/documents, written
by make_office.py), plus the zip-bomb guard and files whose suffix lies."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders import DOCX, PPTX, TEXT, XLSX, Limits, extract, page_at

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"

DOCX_TEXT = """臺灣茶葉產量概況
本報告整理臺灣各產區的茶葉產量與特色，資料來源為農業部茶及飲料作物改良場。
南投縣鹿谷鄉的凍頂烏龍茶於2023年的年產量為1,850公噸，較前一年增加百分之六。
產區 | 主要茶種 | 年產量（公噸）
產區: 南投縣 | 主要茶種: 凍頂烏龍 | 年產量（公噸）: 1,850
產區: 新竹縣 | 主要茶種: 東方美人 | 年產量（公噸）: 420"""

SLIDES = [
    "星河科技 2024 年第二季度业务回顾\n投资者沟通会 · 2024年7月",
    "用户增长\n第二季度新增用户 320 万\n月活跃用户达到 2,150 万\n海外用户占比提升至 18%\n"
    "备注：新增用户主要来自东南亚市场。",
    "区域收入\n区域 | 收入（亿元） | 同比\n区域: 华东 | 收入（亿元）: 4.2 | 同比: +12%\n"
    "区域: 东南亚 | 收入（亿元）: 1.8 | 同比: +35%\n以上数据未经审计。",
]

SHEET_LINES = [
    ("财务摘要", 1, "工作表：财务摘要"),
    ("财务摘要 第 1 行", 1, "年份 | 营收 | 净利润（亿元） | 毛利率 | 公告日期"),
    ("财务摘要 第 2 行", 1, "年份: 2022 | 营收: 10.8亿元 | 净利润（亿元）: 1.6 | 毛利率: 38.5%"
                           " | 公告日期: 2023-03-28"),
    ("财务摘要 第 3 行", 1, "年份: 2023 | 营收: 12.5亿元 | 净利润（亿元）: 2.1 | 毛利率: 41.2%"
                           " | 公告日期: 2024-03-27"),
    ("门店分布", 2, "工作表：门店分布"),
    ("门店分布 第 1 行", 2, "上海 | 36 | 2019-06-01"),
    ("门店分布 第 3 行", 2, "成都 | 12 | 2021-11-18 09:30:00"),
]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def docx_bytes(build: Callable[[Any], None] | None = None) -> bytes:
    """A small Word file made here: ``build(document)`` fills it."""
    from docx import Document

    document = Document()
    if build is not None:
        build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:  # stored: 10,001 members stay fast
        for name, blob in members.items():
            archive.writestr(name, blob)
    return out.getvalue()


def zeros_bomb(member: str, megabytes: int) -> bytes:
    """A zip whose one member is ``megabytes`` MB of zeros (about 1,000 to 1 deflated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        with archive.open(member, "w", force_zip64=True) as sink:
            chunk = bytes(1 << 20)
            for _ in range(megabytes):
                sink.write(chunk)
    return out.getvalue()


@pytest.fixture
def no_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a zip member is read: a refused archive is refused before any inflating."""
    original = zipfile.ZipFile.open

    def open_for_writing_only(self: zipfile.ZipFile, name: object, mode: str = "r", *args: object,
                              **kwargs: object) -> object:
        assert mode == "w", "a zip member was read"
        return original(self, name, mode, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", open_for_writing_only)


# -- Word ----------------------------------------------------------------------------------------

def test_docx_paragraphs_and_table_rows_in_order_traditional_kept() -> None:
    got = extract(fixture("taiwan.docx"), "taiwan.docx")
    assert got.media_type == DOCX
    assert got.text == DOCX_TEXT  # 臺, 縣, 東 stay Traditional: nothing converts them
    assert got.title == "臺灣茶葉產業報告"
    assert got.pages == ()


def test_docx_merged_cell_once_and_title_from_heading() -> None:
    def build(document: Any) -> None:
        document.add_paragraph("前言")
        document.add_heading("合併測試", level=2)
        table = document.add_table(rows=2, cols=3)
        table.cell(0, 0).merge(table.cell(0, 1)).text = "季度"
        table.cell(0, 2).text = "營收"
        for col, value in enumerate(["第一季", "第一季", "3.2"]):
            table.cell(1, col).text = value

    got = extract(docx_bytes(build), "merged.docx")
    assert got.text == "前言\n合併測試\n季度 | 營收\n季度: 第一季 | 第一季 | 營收: 3.2"
    assert got.title == "合併測試"


def test_docx_without_text_is_refused() -> None:
    with pytest.raises(DocumentError, match="no text"):
        extract(docx_bytes(), "blank.docx")


# -- PowerPoint ----------------------------------------------------------------------------------

def test_pptx_slides_in_order_with_a_page_per_slide() -> None:
    got = extract(fixture("deck.pptx"), "deck.pptx")
    assert got.media_type == PPTX
    assert got.text == "\n\n".join(SLIDES)
    assert [p.number for p in got.pages] == [1, 2, 3]
    for page, slide in zip(got.pages, SLIDES, strict=True):
        assert got.text[page.start:].startswith(slide)
    found = page_at(got.pages, got.text.index("320 万"))
    assert found is not None and found.number == 2
    assert got.title == "星河科技 2024 年第二季度业务回顾"


def test_pptx_groups_are_opened_in_reading_order() -> None:
    from pptx import Presentation
    from pptx.util import Cm

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title placeholder
    slide.shapes.add_textbox(Cm(1), Cm(10), Cm(10), Cm(2)).text_frame.text = "页脚说明"
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Cm(12), Cm(2), Cm(5), Cm(2)).text_frame.text = "右上"
    group.shapes.add_textbox(Cm(1), Cm(2), Cm(5), Cm(2)).text_frame.text = "左上"
    out = io.BytesIO()
    deck.save(out)
    got = extract(out.getvalue(), "group.pptx")
    assert got.text == "左上\n右上\n页脚说明"
    assert got.title == ""


# -- Excel ---------------------------------------------------------------------------------------

def test_xlsx_sheet_headings_header_pairs_numbers_and_dates() -> None:
    got = extract(fixture("sheet.xlsx"), "sheet.xlsx")
    assert got.media_type == XLSX
    assert got.text == "\n".join(line for _, _, line in SHEET_LINES)
    assert [(p.label, p.number) for p in got.pages] == [(label, n) for label, n, _ in SHEET_LINES]
    for page, (_, _, line) in zip(got.pages, SHEET_LINES, strict=True):
        assert got.text[page.start:].startswith(line + "\n") or got.text[page.start:] == line
    found = page_at(got.pages, got.text.index("12.5亿元"))
    assert found is not None and found.label == "财务摘要 第 3 行"


def test_xlsx_over_the_character_limit_is_refused_while_reading() -> None:
    from openpyxl import Workbook

    book = Workbook()
    for i in range(200):
        book.active.append([f"第{i}行", "很长的内容" * 10])
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(DocumentTooLargeError, match="characters"):
        extract(out.getvalue(), "big.xlsx", Limits(max_chars=1_000))


def test_xlsx_over_the_row_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.loaders import xlsx

    monkeypatch.setattr(xlsx, "MAX_ROWS", 3)
    with pytest.raises(DocumentTooLargeError, match="over 3 rows"):
        extract(fixture("sheet.xlsx"), "sheet.xlsx")


# -- bad inputs ----------------------------------------------------------------------------------

def test_truncated_docx_is_a_document_error() -> None:
    data = fixture("taiwan.docx")
    with pytest.raises(DocumentError, match="damaged") as caught:
        extract(data[: len(data) // 2], "cut.docx")
    assert type(caught.value) is DocumentError


def test_zip_bomb_over_the_unpacked_limit_is_refused_unread(no_inflating: None) -> None:
    bomb = zeros_bomb("word/document.xml", 3)
    with pytest.raises(DocumentTooLargeError, match="unpacks to 3,145,"):
        extract(bomb, "bomb.docx", Limits(max_unpacked_bytes=2_000_000))


def test_zip_bomb_with_an_absurd_ratio_is_refused_under_the_limit(no_inflating: None) -> None:
    bomb = zeros_bomb("xl/worksheets/sheet1.xml", 20)  # 20 MB of zeros in about 20 KB
    assert len(bomb) < 100_000
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        extract(bomb, "bomb.xlsx")


def test_too_many_members_is_refused(no_inflating: None) -> None:
    members = {f"word/media/{i}.xml": b"" for i in range(10_001)}
    with pytest.raises(DocumentTooLargeError, match="parts"):
        extract(zip_bytes(members), "many.docx")


def test_encrypted_member_is_refused(no_inflating: None) -> None:
    data = bytearray(zip_bytes({"word/document.xml": b"<w:document/>"}))
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        at = data.index(signature) + flag_at
        data[at] |= 0x01  # "encrypted" bit of the general-purpose flags
    with pytest.raises(DocumentError, match="encrypted"):
        extract(bytes(data), "locked.docx")


def test_docx_named_pdf_still_loads_as_word() -> None:
    got = extract(fixture("taiwan.docx"), "report.pdf")
    assert got.media_type == DOCX
    assert got.text == DOCX_TEXT


def test_text_named_docx_is_read_as_text() -> None:
    got = extract("這不是 Word 檔案。".encode(), "fake.docx")
    assert got.media_type == TEXT
    assert got.text == "這不是 Word 檔案。"


def test_word_parts_that_do_not_parse_are_a_document_error() -> None:
    data = zip_bytes({"[Content_Types].xml": b"<Types", "word/document.xml": b"<not xml"})
    with pytest.raises(DocumentError, match="not a readable Word file"):
        extract(data, "broken.docx")


# -- dispatch ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "media_type", "fact"), [
    ("taiwan.docx", DOCX, "凍頂烏龍茶於2023年的年產量為1,850公噸"),
    ("deck.pptx", PPTX, "第二季度新增用户 320 万"),
    ("sheet.xlsx", XLSX, "营收: 12.5亿元"),
])
def test_extract_dispatches_each_fixture(name: str, media_type: str, fact: str) -> None:
    got = extract(fixture(name), name)
    assert got.media_type == media_type
    assert fact in got.text
    starts = [p.start for p in got.pages]
    assert starts == sorted(starts) and all(0 <= s < len(got.text) for s in starts)
