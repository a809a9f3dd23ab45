"""The chat page in headless Chromium: ask, watch the answer stream in, open a citation and see
its quote highlighted in the passage. Screenshot: tests/artifacts/web.png."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.config import Settings
from rag.index import Index
from server.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(seed_index: Index) -> Iterator[str]:
    """The real app under uvicorn in a thread, on a free loopback port."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive"), index=seed_index)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield base
    srv.should_exit = True
    thread.join(timeout=10)


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
