"""``POST /documents`` with real formats: sniffed by content, cited by page, bad input refused
with a 4xx and nothing written (neither the index nor ``uploads/``)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_loaders_pdf import raw_pdf, reportlab_pdf

from rag.store.index import Index

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def upload(client: TestClient, name: str, data: bytes) -> Any:
    return client.post("/documents?wait=true", files=[("files", (name, data, "application/octet-stream"))])


def state(client: TestClient, index: Index) -> tuple[list[str], list[str], int]:
    """What an upload could have written: the document list, stored uploads, the generation."""
    folder = index.directory / "uploads"
    stored = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return [d["doc_id"] for d in client.get("/documents").json()["documents"]], stored, \
        index.current_generation()


@pytest.fixture
def client(make_client: Any) -> TestClient:
    return make_client(max_unpacked_bytes=20_000_000, max_pages=500)  # bombs stay small and fast


def test_pdf_upload_is_listed_and_cited_by_page(client: TestClient) -> None:
    r = upload(client, "秦创原简报.pdf", (FIXTURES / "two_pages.pdf").read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["documents"] == ["秦创原简报"]
    (doc,) = [d for d in client.get("/documents").json()["documents"] if d["doc_id"] == "秦创原简报"]
    assert doc["media_type"] == "application/pdf" and doc["pages"] == 2
    assert doc["title"] == "秦创原创新驱动平台简介" and doc["source"] == "秦创原简报.pdf"

    question = "秦创原创新驱动平台于2021年3月在哪里启动?"
    answer = client.post("/ask", json={"question": question}).json()
    cited = [c for c in answer["citations"] if c["doc_id"] == "秦创原简报"]
    assert cited, answer
    assert {c["page"] for c in cited if "西安启动" in c["quote"]} == {2}
    assert all(c["location"] == f"第 {c['page']} 页" for c in cited)
    assert all(p["page"] in (1, 2) for p in answer["passages"] if p["doc_id"] == "秦创原简报")
    # the OpenAI-compatible endpoint carries the same citations
    chat = client.post("/v1/chat/completions", json={
        "model": "wenda", "messages": [{"role": "user", "content": question}]})
    assert any(c.get("page") == 2 for c in chat.json()["choices"][0]["message"]["citations"])


@pytest.mark.parametrize(("name", "media_type", "fact"), [
    ("taiwan.docx", DOCX, "凍頂烏龍茶"),
    ("deck.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     "第二季度新增用户 320 万"),
    ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "12.5亿元"),
    ("news.html", "text/html", "中华鲟野生幼鱼1,286尾"),
])
def test_each_format_uploads(client: TestClient, seed_index: Index, name: str, media_type: str,
                             fact: str) -> None:
    r = upload(client, name, (FIXTURES / name).read_bytes())
    assert r.status_code == 200, r.text
    stem = name.rsplit(".", 1)[0]
    (doc,) = [d for d in client.get("/documents").json()["documents"] if d["doc_id"] == stem]
    assert doc["media_type"] == media_type
    assert fact in seed_index.text(stem)


def _encrypted_pdf() -> bytes:
    from reportlab.lib.pdfencrypt import StandardEncryption

    return reportlab_pdf(lambda c: c.drawString(72, 700, "secret"),
                         encrypt=StandardEncryption("secret", ownerPassword="owner"))


def _many_pages(count: int) -> bytes:
    """A valid PDF whose page tree names one page object ``count`` times."""
    return raw_pdf(b"<< /Type /Catalog /Pages 2 0 R >>",
                   b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join([b"3 0 R"] * count), count),
                   b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")


def _docx_bomb(megabytes: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        with archive.open("word/document.xml", "w") as sink:
            for _ in range(megabytes):
                sink.write(bytes(1 << 20))
    return out.getvalue()


@pytest.mark.parametrize(("name", "make", "status", "code", "says"), [
    ("secret.pdf", _encrypted_pdf, 400, "invalid_document", "encrypted"),
    ("broken.pdf", lambda: (FIXTURES / "two_pages.pdf").read_bytes()[:1500], 400, "invalid_document",
     "not a valid PDF"),
    ("huge.pdf", lambda: _many_pages(100_000), 413, "document_too_large", "pages"),
    ("bomb.docx", lambda: _docx_bomb(40), 413, "document_too_large", "unpack"),
    ("report.pdf", lambda: (FIXTURES / "taiwan.docx").read_bytes(), 415, "unsupported_media_type",
     "content is"),
    ("tool.txt", lambda: b"MZ\x90\x00\x03\x00\x00\x00" * 200, 400, "invalid_document", "binary"),
])
def test_bad_documents_are_refused_and_nothing_is_written(
        client: TestClient, seed_index: Index, name: str, make: Any, status: int, code: str,
        says: str) -> None:
    before = state(client, seed_index)
    r = upload(client, name, make())
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and says in error["message"], error
    assert state(client, seed_index) == before
