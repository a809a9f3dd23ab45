"""The chat page in headless Chromium: ask, watch the answer stream in, open a citation and see
its quote highlighted in the passage; upload files (picker, drag and drop, API key) and see them
listed, follow an upload's progress and cancel it; see a citation's page; pick a collection, see
its tags on citations, and give a scoped key when asked. Screenshots: tests/artifacts/web.png,
tests/artifacts/web_upload.png, tests/artifacts/web_progress.png, tests/artifacts/web_collections.png."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder, serving
from test_jobs import BIG, Gate

from rag.config import Settings
from rag.store.index import Index
from server.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def serve(index: Index, **overrides: Any) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free loopback port."""
    settings = Settings(**{"index_dir": index.directory, "generator": "extractive", **overrides})
    with serving(create_app(settings, index=index)) as base:
        yield base


@pytest.fixture
def server(seed_index: Index) -> Iterator[str]:
    with serve(seed_index) as base:
        yield base


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser: Any, base: str) -> tuple[Any, list[str]]:
    """A fresh page on the chat UI, once its stats line has loaded; and the page errors it raises."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    expect(page.locator("#stats")).to_contain_text("篇文档")
    return page, errors


def watch_status(page: Any) -> None:
    """Record every text the upload status shows (the busy state is gone by the time we look)."""
    page.evaluate("""() => { window.__seen = [];
      const box = document.getElementById('upload-status');
      new MutationObserver(() => window.__seen.push(box.textContent))
        .observe(box, {childList: true, subtree: true, characterData: true}); }""")


DROP = """([name, text]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, {type: 'application/octet-stream'}));
  for (const type of ['dragenter', 'dragover', 'drop'])
    document.querySelector('#log').dispatchEvent(
      new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
}"""
UPLOAD = "# 差旅报销办法\n\n员工出差的住宿标准为每晚不超过六百元，高铁乘坐二等座。\n"


def test_chat_page_streams_and_highlights_citations(server: str, seed_index: Index) -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server + "/")
        sync_api.expect(page.locator("#stats")).to_contain_text("2 篇文档")

        page.fill("#q", QUESTION)
        page.keyboard.press("Enter")
        sync_api.expect(page.locator(".msg.user")).to_have_text(QUESTION)
        answer = page.locator(".msg.bot").last
        sync_api.expect(answer.locator(".sources .source").first).to_be_visible(timeout=20_000)
        assert "量子" in answer.locator(".text").inner_text()

        cite = answer.locator(".cite").first
        n = int(cite.inner_text())
        cite.click()
        panel = page.locator("#panel")
        sync_api.expect(panel).to_be_visible()
        sync_api.expect(page.locator("#panel-title")).to_have_text(f"引用 [{n}]")
        mark = panel.locator("mark#quote")
        sync_api.expect(mark).to_be_visible()
        quote = mark.inner_text()
        doc_id = panel.locator(".info code").inner_text()
        text = seed_index.text(doc_id)
        assert quote and quote in text  # the highlighted span is the original, verbatim
        assert quote in panel.locator("#passage").inner_text()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web.png"))

        page.click(".seg button[data-script=simplified]")
        sync_api.expect(mark).not_to_have_text(quote)  # the seeds are Traditional
        page.click(".seg button[data-script=original]")
        sync_api.expect(mark).to_have_text(quote)

        page.fill("#q", "   ")
        page.keyboard.press("Enter")
        assert page.locator(".msg.user").count() == 1  # blank input is not sent
        assert not errors, errors
        browser.close()


def test_upload_by_picker_lists_document(server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page, errors = open_page(browser, server)
    expect(page.locator("#stats")).to_contain_text("2 篇文档")
    page.click("#docs-btn")
    expect(page.locator("#dropzone")).to_be_visible()
    expect(page.locator(".doclist li")).to_have_count(2)
    watch_status(page)

    file = {"name": "差旅报销.md", "mimeType": "text/markdown", "buffer": UPLOAD.encode()}
    page.set_input_files("#file-input", files=[file])
    status = page.locator("#upload-status")
    expect(status).to_contain_text("上传完成：新增 1 个 · 更新 0 个 · 未变 0 个", timeout=20_000)
    assert any("正在上传并索引 1 个文件…" in t for t in page.evaluate("window.__seen"))
    row = page.locator(".doclist li", has_text="差旅报销")
    expect(row).to_be_visible()
    expect(row.locator(".tag")).to_have_text("文本")
    expect(row).to_have_class("fresh")
    expect(page.locator(".doclist li")).to_have_count(3)
    expect(page.locator("#stats")).to_contain_text("3 篇文档")

    page.set_input_files("#file-input", files=[file])  # the same bytes again: nothing to do
    expect(status).to_contain_text("未变 1 个", timeout=20_000)

    page.fill("#q", "员工出差的住宿标准是多少？")  # and the uploaded text answers questions
    page.keyboard.press("Enter")
    sources = page.locator(".msg.bot").last.locator(".sources")
    expect(sources).to_contain_text("差旅报销", timeout=20_000)
    assert not errors, errors


def test_upload_shows_progress_and_can_be_cancelled(seed_index: Index, fake_embedder: FakeEmbedder,
                                                    browser: Any) -> None:
    from playwright.sync_api import expect

    gate = Gate(fake_embedder)  # each embedding batch of the job waits until the test lets it go
    with serve(seed_index, chunk_size=60) as base:
        page, errors = open_page(browser, base)
        page.click("#docs-btn")
        expect(page.locator(".doclist li")).to_have_count(2)
        page.set_input_files("#file-input", files=[{"name": "设备.txt", "mimeType": "text/plain",
                                                    "buffer": BIG.encode()}])
        text, bar = page.locator("#upload-progress-text"), page.locator("#upload-progress")
        expect(text).to_have_text(re.compile(r"^0 / \d+ 段$"), timeout=20_000)
        total = int(text.inner_text().split(" / ")[1].split()[0])
        gate.let()
        expect(text).to_have_text(f"16 / {total} 段", timeout=20_000)
        assert bar.evaluate("b => [b.value, b.max]") == [16, total]
        page.screenshot(path=str(ARTIFACTS / "web_progress.png"))
        with page.expect_response(lambda r: r.request.method == "DELETE" and "/jobs/" in r.url):
            page.click("#upload-cancel")
        gate.let(100)
        status = page.locator("#upload-status")
        expect(status).to_contain_text("已取消上传，索引保持原样。", timeout=20_000)
        expect(status).to_have_class("upload-status cancelled")
        expect(page.locator(".doclist li")).to_have_count(2)
        expect(page.locator("#stats")).to_contain_text("2 篇文档")
        assert not errors, errors


def test_dropped_unsupported_file_shows_server_message(server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page, errors = open_page(browser, server)
    page.evaluate(DROP, ["setup.exe", "MZ\x90\x00"])  # dropped on the chat, not on the panel
    status = page.locator("#upload-status")
    expect(page.locator("#panel")).to_be_visible()
    expect(status).to_contain_text("上传失败", timeout=20_000)
    expect(status).to_contain_text("setup.exe: unsupported file type .exe")
    expect(status).to_have_class("upload-status error")
    assert "dragging" not in (page.locator("body").get_attribute("class") or "")
    expect(page.locator(".doclist li")).to_have_count(2)
    expect(page.locator("#stats")).to_contain_text("2 篇文档")
    assert not errors, errors


def test_upload_asks_for_the_api_key_and_retries(seed_index: Index, browser: Any) -> None:
    from playwright.sync_api import expect

    with serve(seed_index, api_key="s3cret-key") as base:
        page, errors = open_page(browser, base)
        page.evaluate(DROP, ["notes.txt", "会议纪要：下周三讨论年度预算。"])
        status = page.locator("#upload-status")
        expect(status).to_contain_text("上传需要 API 密钥", timeout=20_000)
        page.fill("#api-key", "wrong")
        page.press("#api-key", "Enter")
        expect(status).to_contain_text("API 密钥不正确", timeout=20_000)
        page.fill("#api-key", "s3cret-key")
        page.get_by_role("button", name="保存并重试").click()
        expect(status).to_contain_text("新增 1 个", timeout=20_000)
        expect(page.locator(".doclist li", has_text="notes")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('wenda.apiKey')") == "s3cret-key"
        assert not errors, errors


def _crafted_stream(question: str) -> str:
    """An OpenAI-style SSE stream whose final ``wenda`` Answer cites page 2 of a titled PDF."""
    passage = "第二章 差旅\n员工出差的住宿标准为每晚不超过六百元，高铁乘坐二等座。"
    quote = "住宿标准为每晚不超过六百元"
    at = 100 + passage.index(quote)
    answer = {
        "question": question, "answer": "出差住宿每晚不超过六百元[1]。", "refused": False,
        "citations": [{"n": 1, "doc_id": "policy/2024/handbook", "chunk_id": "policy/2024/handbook#4",
                       "quote": quote, "start": at, "end": at + len(quote), "score": 0.82,
                       "passage": passage, "passage_start": 100, "page": 2, "location": "第 2 页",
                       "title": "员工手册（2024 版）"}],
        "passages": [{"doc_id": "policy/2024/handbook", "chunk_id": "policy/2024/handbook#4", "text": passage,
                      "score": 0.82, "start": 100, "end": 100 + len(passage), "page": 2,
                      "location": "第 2 页"}],
        "timings_ms": {"retrieve": 12.0, "generate": 3.0}, "generator": "extractive",
    }
    chunks = [{"object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {"content": answer["answer"]}}]},
              {"object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "wenda": answer}]
    return "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def test_citation_shows_page_and_title(server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    page, errors = open_page(browser, server)
    page.click("#docs-btn")
    page.set_input_files("#file-input", files=[
        {"name": "差旅报销.md", "mimeType": "text/markdown", "buffer": UPLOAD.encode()}])
    expect(page.locator("#upload-status")).to_contain_text("新增 1 个", timeout=20_000)

    question = "出差住宿标准是多少？"
    stream = _crafted_stream(question)
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream; charset=utf-8"}, body=stream))
    page.fill("#q", question)
    page.keyboard.press("Enter")
    source = page.locator(".msg.bot").last.locator(".sources .source").first
    expect(source).to_be_visible(timeout=20_000)
    expect(source.locator(".loc")).to_have_text("第 2 页")
    expect(source.locator(".doc")).to_have_text("员工手册（2024 版）")
    expect(source.locator(".doc")).to_have_attribute("title", "policy/2024/handbook")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_upload.png"))  # the upload result and a cited page

    source.click()
    info = page.locator("#panel .info")
    expect(info).to_contain_text("· 第 2 页 ·")
    expect(info).to_contain_text("《员工手册（2024 版）》")
    expect(info.locator("code")).to_have_text("policy/2024/handbook")
    expect(page.locator("mark#quote")).to_have_text("住宿标准为每晚不超过六百元")

    page.click(".seg button[data-script=traditional]")  # the location follows the script switch
    expect(source.locator(".loc")).to_have_text("第 2 頁")
    assert not errors, errors


def test_uploaded_pdf_is_cited_by_page(server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    pdf = Path(__file__).resolve().parent / "fixtures" / "documents" / "two_pages.pdf"
    if not pdf.exists():
        pytest.skip("tests/fixtures/documents/two_pages.pdf is not there")
    pytest.importorskip("rag.loaders.pdf", reason="no PDF loader")
    page, errors = open_page(browser, server)
    page.click("#docs-btn")
    page.set_input_files("#file-input", files=[str(pdf)])
    expect(page.locator("#upload-status")).to_contain_text("新增 1 个", timeout=30_000)
    row = page.locator(".doclist li", has_text="two_pages")
    expect(row.locator(".name b")).to_have_text("秦创原创新驱动平台简介")
    expect(row.locator(".tag")).to_have_text("PDF")
    expect(row.locator(".facts")).to_contain_text("2 页 ·")

    page.fill("#q", "秦创原创新驱动平台的总部位于哪里？")
    page.keyboard.press("Enter")
    source = page.locator(".msg.bot").last.locator(".source", has_text="秦创原创新驱动平台简介").first
    expect(source).to_be_visible(timeout=20_000)
    expect(source.locator(".loc")).to_have_text("第 2 页")
    source.click()
    expect(page.locator("#panel .info")).to_contain_text("· 第 2 页 ·")
    expect(page.locator("#panel .info code")).to_have_text("two_pages")
    assert not errors, errors


# ---- collections (issue 14): the picker, tags on citations, scoped keys --------------------------
HR_TEXT = "人事制度：员工年假为每年十五天，由部门经理审批。"


def add_hr(index: Index, embedder: FakeEmbedder) -> None:
    from rag.ingest import ingest
    from rag.ingest.documents import Document
    from rag.store.collections import create_collection

    ingest(create_collection(index.directory, "hr", embedder), [Document.from_text("leave", HR_TEXT)],
           tags=["人事", "2024"])


def test_collection_picker_asks_and_uploads_there(seed_index: Index, fake_embedder: FakeEmbedder,
                                                  browser: Any) -> None:
    from playwright.sync_api import expect

    add_hr(seed_index, fake_embedder)
    with serve(seed_index) as base:
        page, errors = open_page(browser, base)
        picker = page.locator("#collection")
        expect(picker).to_be_visible()
        assert picker.locator("option").all_inner_texts() == ["默认文档集", "hr"]
        picker.select_option("hr")
        expect(page.locator("#stats")).to_contain_text("1 篇文档")
        page.fill("#q", "员工年假有几天？")
        page.keyboard.press("Enter")
        source = page.locator(".msg.bot").last.locator(".sources .source").first
        expect(source).to_be_visible(timeout=20_000)
        expect(source.locator(".doc")).to_have_text("leave")
        assert source.locator(".chip").all_inner_texts() == ["2024", "人事"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web_collections.png"))  # the picker and a tagged citation

        page.click("#docs-btn")
        expect(page.locator("#panel-title")).to_have_text("已索引的文档 · hr")
        expect(page.locator(".doclist li")).to_have_count(1)
        page.set_input_files("#file-input", files=[
            {"name": "差旅报销.md", "mimeType": "text/markdown", "buffer": UPLOAD.encode()}])
        expect(page.locator("#upload-status")).to_contain_text("新增 1 个", timeout=20_000)
        expect(page.locator(".doclist li")).to_have_count(2)
        expect(page.locator("#stats")).to_contain_text("2 篇文档")
        assert (seed_index.directory / "collections" / "hr" / "uploads" / "差旅报销.md").is_file()
        assert "差旅报销" not in {d.doc_id for d in seed_index.documents()}  # not in the default
        picker.select_option("default")
        expect(page.locator("#stats")).to_contain_text("2 篇文档")
        expect(page.locator(".doclist li", has_text="差旅报销")).to_have_count(0)
        assert not errors, errors


def test_a_scoped_key_is_asked_for_and_shows_only_its_collections(
        seed_index: Index, fake_embedder: FakeEmbedder, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from rag.keys import add_key

    add_hr(seed_index, fake_embedder)
    keys = tmp_path / "keys.json"
    secret = add_key(keys, "hr-bot", {"hr": ["read"]})
    with serve(seed_index, keys_file=keys) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        expect(page.locator("#stats")).to_have_text("需要 API 密钥")
        expect(page.locator("#upload-status")).to_contain_text("此服务器需要 API 密钥")
        page.fill("#api-key", "wk_wrong")
        page.press("#api-key", "Enter")
        expect(page.locator("#upload-status")).to_contain_text("API 密钥不正确")
        page.fill("#api-key", secret)
        page.press("#api-key", "Enter")
        expect(page.locator("#stats")).to_contain_text("1 篇文档")
        expect(page.locator("#collection")).to_be_hidden()  # one collection: nothing to pick
        expect(page.locator(".doclist li")).to_have_count(1)
        page.fill("#q", "员工年假有几天？")
        page.keyboard.press("Enter")
        source = page.locator(".msg.bot").last.locator(".sources .source").first
        expect(source).to_be_visible(timeout=20_000)
        expect(source.locator(".doc")).to_have_text("leave")
        assert not errors, errors
