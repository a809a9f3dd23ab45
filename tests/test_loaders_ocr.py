"""OCR of images and scanned PDF pages. The real-model tests (integration) read the committed scan,
a Simplified and a Traditional sentence, with RapidOCR's bundled models and no network."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.errors import DocumentError, DocumentTooLargeError
from rag.loaders import PNG, Limits, Page, extract
from rag.loaders import ocr as ocr_loader
from rag.loaders import pdf as pdf_loader

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"
SIMPLIFIED = "秦创原创新驱动平台于2021年3月在西安启动，由陕西省科技厅牵头建设。"  # wrapped after 陕西省
TRADITIONAL = "該平台致力於促進科技成果轉化。"


def test_image_without_ocr_installed_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: False)
    with pytest.raises(DocumentError, match=r"scan\.png: .*OCR, which is not installed") as error:
        extract((FIXTURES / "scan.png").read_bytes(), "scan.png", Limits())
    assert "pip install -e '.[ocr]'" in str(error.value)


def test_image_with_ocr_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: True)
    with pytest.raises(DocumentError, match=r"OCR is turned off \(RAG_OCR\)"):
        ocr_loader.load((FIXTURES / "scan.png").read_bytes(), "scan.png", Limits(ocr=False))


def test_huge_image_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: True)
    monkeypatch.setattr(ocr_loader, "read_lines", lambda *args: pytest.fail("OCR ran"))
    with pytest.raises(DocumentTooLargeError, match="1000 x 190 pixels"):
        ocr_loader.load((FIXTURES / "scan.png").read_bytes(), "scan.png", Limits(max_unpacked_bytes=100_000))


def test_broken_image_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_loader, "available", lambda: True)
    data = (FIXTURES / "scan.png").read_bytes()[:200]
    with pytest.raises(DocumentError, match=r"cut\.png: not a readable image"):
        ocr_loader.load(data, "cut.png", Limits())


@pytest.fixture(scope="module")
def offline_engine() -> Iterator[None]:
    """A fresh engine, built and run by the tests with RapidOCR's download step made to fail."""
    pytest.importorskip("rapidocr")
    from rapidocr.utils.download_file import DownloadFile

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("RapidOCR tried to download a model")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DownloadFile, "run", refuse)
        ocr_loader.engine.cache_clear()
        yield
    ocr_loader.engine.cache_clear()


@pytest.mark.integration
def test_ocr_reads_simplified_and_traditional_from_an_image(offline_engine: None) -> None:
    started = time.perf_counter()
    result = ocr_loader.load((FIXTURES / "scan.png").read_bytes(), "scan.png", Limits())
    print(f"OCR: {time.perf_counter() - started:.1f} s for a 1000 x 190 image")
    assert SIMPLIFIED in result.text  # the wrapped line joined back, without a space
    assert TRADITIONAL in result.text
    assert result.text.split("\n") == [SIMPLIFIED, TRADITIONAL]
    assert (result.media_type, result.pages, result.title) == (PNG, (Page(0, 1),), SIMPLIFIED)


@pytest.mark.integration
def test_ocr_reads_a_pdf_page_without_a_text_layer(offline_engine: None) -> None:
    started = time.perf_counter()
    result = pdf_loader.load((FIXTURES / "scan.pdf").read_bytes(), "scan.pdf", Limits())
    print(f"OCR: {time.perf_counter() - started:.1f} s for one rendered page")
    assert "秦创原创新驱动平台于2021年3月在西安启动" in result.text
    assert "促進科技成果轉化" in result.text
    assert result.pages == (Page(0, 1),)
    assert result.notes == ()
