"""The real app in-process (FastAPI's TestClient) over the seed index with the fake embedder;
one integration test runs ``rag serve`` as a subprocess and talks to it with the ``openai`` package."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.schema import Answer
from rag.store.index import Index
from rag.text.lexical import agent_verb
from rag.text.normalize import has_cjk
from server.app import create_app

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
UPLOAD = "福建海峡实验室位于福州市仓山区，主要研究海洋信息技术。实验室成立于二〇二三年三月。\n".encode()

MakeClient = Callable[..., TestClient]


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def assert_error(response: Any, status: int, code: str) -> None:
    """``response`` is an httpx(-compatible) response: Starlette's TestClient may use httpx2."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def sse_events(text: str) -> list[Any]:
    """``data:`` payloads of an SSE body, JSON-decoded (``[DONE]`` kept as the string)."""
    events = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                data = line[5:].strip()
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


# ---- /ask ----------------------------------------------------------------------------------------
def test_ask_returns_answer_json_with_verified_quotes(client: TestClient, seed_index: Index) -> None:
    r = client.post("/ask", json={"question": QUESTION})
    assert r.status_code == 200
    answer = Answer.model_validate(r.json())
    assert not answer.refused and answer.citations and answer.passages
    assert "量子" in answer.answer
    for c in answer.citations:
        assert seed_index.text(c.doc_id)[c.start:c.end] == c.quote
        assert c.passage is not None and c.passage_start is not None
        assert c.passage[c.start - c.passage_start:c.end - c.passage_start] == c.quote


def test_ask_honours_top_k_and_history(client: TestClient) -> None:
    r = client.post("/ask", json={"question": QUESTION, "top_k": 2})
    assert r.status_code == 200 and len(r.json()["passages"]) == 2
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "量子通信等。"}]
    r = client.post("/ask", json={"question": "它落户在哪里?", "history": history})
    assert r.status_code == 200
    assert "秦创原" in (r.json()["standalone_question"] or "")


@pytest.mark.parametrize(("body", "status"), [
    ({"question": ""}, 400),
    ({"question": "   \n "}, 400),
    ({"question": "问" * 5000}, 400),
    ({"question": QUESTION, "top_k": 0}, 400),
    ({"question": QUESTION, "top_k": 10_000}, 400),
    ({"question": QUESTION, "top_k": "many"}, 422),
    ({"question": None}, 422),
    ({"question": 5}, 422),
    ({}, 422),
    ([QUESTION], 422),
    ({"question": QUESTION, "history": [{"role": "robot", "content": "x"}]}, 422),
])
def test_bad_ask_input_is_4xx_json(client: TestClient, body: Any, status: int) -> None:
    assert_error(client.post("/ask", json=body), status, "invalid_input")


def test_malformed_json_is_422(client: TestClient) -> None:
    r = client.post("/ask", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert_error(r, 422, "invalid_input")


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.delete("/health"), 405, "method_not_allowed")


# ---- OpenAI-compatible routes ---------------------------------------------------------------
def chat_body(*messages: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"model": "wenda", "messages": [{"role": r, "content": c} for r, c in messages], **extra}


def test_chat_completion_carries_citations(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat_body(("system", "be brief"), ("user", QUESTION),
                                                           temperature=0.2, max_tokens=50))
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    message = body["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert message["citations"] and message["citations"] == body["citations"]
    assert Answer.model_validate(body["wenda"]).answer == message["content"]


def test_chat_completion_stream_is_sse(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat_body(("user", QUESTION), stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["delta"]["citations"] == final["citations"]
    answer = Answer.model_validate(final["wenda"])
    assert answer.citations and not answer.refused and text.strip()


def test_chat_history_drives_the_follow_up(client: TestClient) -> None:
    body = chat_body(("user", QUESTION), ("assistant", "量子通信、量子计算、量子测量。"),
                     ("user", "它落户在哪里?"))
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert "秦创原" in (r.json()["wenda"]["standalone_question"] or "")


def test_chat_content_parts_are_read(client: TestClient) -> None:
    parts = [{"type": "text", "text": QUESTION}]
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}]})
    assert r.status_code == 200 and r.json()["citations"]


@pytest.mark.parametrize(("body", "status"), [
    (chat_body(("system", "hi")), 400),
    (chat_body(("user", "  ")), 400),
    (chat_body(("user", "  "), stream=True), 400),
    ({"messages": []}, 422),
    ({"messages": "hello"}, 422),
    ({"model": "wenda"}, 422),
])
def test_bad_chat_input_is_4xx_json(client: TestClient, body: Any, status: int) -> None:
    assert_error(client.post("/v1/chat/completions", json=body), status, "invalid_input")


def test_models_lists_the_one_model(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["wenda"]


def test_official_openai_client_in_process(client: TestClient) -> None:
    openai = pytest.importorskip("openai")
    oa = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    assert [m.id for m in oa.models.list()] == ["wenda"]
    done = oa.chat.completions.create(model="wenda", messages=[{"role": "user", "content": QUESTION}])
    assert done.choices[0].message.content
    assert (done.choices[0].message.model_extra or {})["citations"]
    parts = list(oa.chat.completions.create(
        model="wenda", messages=[{"role": "user", "content": QUESTION}], stream=True))
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices).strip()
    assert (parts[-1].choices[0].delta.model_extra or {})["citations"]


# ---- documents ---------------------------------------------------------------------------------
def upload(client: TestClient, name: str, data: bytes, **headers: str) -> Any:
    """Upload and wait for the ingest job (``?wait=true``: 200 with the report, as before jobs)."""
    return client.post("/documents?wait=true", files=[("files", (name, data, "text/plain"))],
                       headers=headers)


def uploads_of(index: Index) -> list[str]:
    folder = index.directory / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def doc_ids(client: TestClient) -> list[str]:
    body = client.get("/documents").json()
    assert body["count"] == len(body["documents"])
    return [d["doc_id"] for d in body["documents"]]


def test_documents_upload_list_ask_delete(client: TestClient, seed_index: Index) -> None:
    before = doc_ids(client)
    assert len(before) == 2 and {"doc_id", "path", "sha256", "chars", "chunks"} <= set(
        client.get("/documents").json()["documents"][0])
    r = upload(client, "海峡实验室.txt", UPLOAD)
    assert r.status_code == 200, r.text
    assert r.json()["documents"] == ["海峡实验室"] and r.json()["added"] == ["海峡实验室"]
    assert uploads_of(seed_index) == ["海峡实验室.txt"]
    assert (seed_index.directory / "uploads" / "海峡实验室.txt").read_bytes() == UPLOAD
    assert sorted(doc_ids(client)) == sorted([*before, "海峡实验室"])
    answer = client.post("/ask", json={"question": "福建海峡实验室位于哪里?"}).json()
    assert answer["citations"] and answer["citations"][0]["doc_id"] == "海峡实验室"
    assert upload(client, "海峡实验室.txt", UPLOAD).json()["skipped"] == ["海峡实验室"]
    assert client.delete("/documents/海峡实验室").json() == {"deleted": "海峡实验室"}
    assert doc_ids(client) == before and uploads_of(seed_index) == []
    assert_error(client.delete("/documents/海峡实验室"), 404, "not_found")


def test_upload_several_files_and_markdown(client: TestClient, seed_index: Index) -> None:
    files = [("files", ("a.md", b"# A\n\n" + UPLOAD, "text/markdown")),
             ("files", ("b.txt", "另一份文件，讲述闽江口的湿地公园。".encode(), "text/plain"))]
    r = client.post("/documents?wait=true", files=files)
    assert r.status_code == 200 and sorted(r.json()["added"]) == ["a", "b"]
    assert uploads_of(seed_index) == ["a.md", "b.txt"]
    r = client.post("/documents?wait=true", files=[("files", ("a.txt", b"x" + UPLOAD, "text/plain"))])
    assert r.json()["updated"] == ["a"] and uploads_of(seed_index) == ["a.txt", "b.txt"]


def test_write_routes_need_the_api_key(make_client: MakeClient, seed_index: Index) -> None:
    client = make_client(api_key="s3cret")
    r = upload(client, "k.txt", UPLOAD)
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert_error(upload(client, "k.txt", UPLOAD, Authorization="Bearer wrong"), 401, "unauthorized")
    assert_error(upload(client, "k.txt", UPLOAD, Authorization="s3cret"), 401, "unauthorized")
    assert "k" not in doc_ids(client) and uploads_of(seed_index) == []
    assert upload(client, "k.txt", UPLOAD, Authorization="Bearer s3cret").status_code == 200
    assert_error(client.delete("/documents/k"), 401, "unauthorized")
    assert "k" in doc_ids(client)  # reads stay open
    assert client.delete("/documents/k", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/ask", json={"question": QUESTION}).status_code == 200
    assert client.get("/health").json()["auth"] is True


def test_oversized_uploads_are_413(make_client: MakeClient, seed_index: Index) -> None:
    client = make_client(max_upload_bytes=1000)
    assert_error(upload(client, "big.txt", "大".encode() * 2000), 413, "payload_too_large")
    # over the declared-length limit: refused before the body is read
    assert_error(upload(client, "huge.txt", b"a" * 200_000), 413, "payload_too_large")
    assert uploads_of(seed_index) == [] and len(doc_ids(client)) == 2
    assert upload(client, "small.txt", UPLOAD).status_code == 200


@pytest.mark.parametrize("name", ["report.pdf", "tool.exe", "noext", "archive.tar.gz", "../.txt", ""])
def test_unsupported_types_are_415(client: TestClient, seed_index: Index, name: str) -> None:
    r = upload(client, name, UPLOAD)
    if name == "":  # no file name at all: the multipart part is not a file
        assert r.status_code in (415, 422) and "error" in r.json()
    else:
        assert_error(r, 415, "unsupported_media_type")
    assert uploads_of(seed_index) == [] and len(doc_ids(client)) == 2


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\x00" * 50, b"\xff\xfe\xfa\x80" * 50, b"  \n"])
def test_binary_or_empty_text_is_400_and_nothing_written(client: TestClient, seed_index: Index,
                                                         data: bytes) -> None:
    assert_error(upload(client, "bad.txt", data), 400, "invalid_document")
    assert uploads_of(seed_index) == [] and len(doc_ids(client)) == 2


@pytest.mark.parametrize(("name", "doc_id"), [
    ("../../etc/evil.txt", "evil"),
    ("..\\..\\windows\\win.md", "win"),
    ("/abs/path/abs.txt", "abs"),
    ("sp ace&semi;colon.txt", "sp_ace_semi_colon"),
    ("..hidden.txt", "hidden"),
])
def test_upload_names_are_sanitized(client: TestClient, seed_index: Index, name: str,
                                    doc_id: str) -> None:
    r = upload(client, name, UPLOAD)
    assert r.status_code == 200, r.text
    assert r.json()["documents"] == [doc_id]
    stored = list((seed_index.directory / "uploads").iterdir())
    assert [p.stem for p in stored] == [doc_id]
    assert all(p.resolve().parent == (seed_index.directory / "uploads").resolve() for p in stored)
    assert not (seed_index.directory.parent / "etc").exists()


@pytest.mark.parametrize("name", ["...md", "/.txt/..txt", "../_ .txt"])
def test_upload_names_without_a_stem_are_400(client: TestClient, seed_index: Index, name: str) -> None:
    assert_error(upload(client, name, UPLOAD), 400, "invalid_input")
    assert uploads_of(seed_index) == []


def test_delete_does_not_touch_paths(client: TestClient, seed_index: Index) -> None:
    victim = seed_index.directory / "victim.txt"
    victim.write_text("keep me")
    assert_error(client.delete("/documents/..%2Fvictim"), 404, "not_found")
    assert_error(client.delete("/documents/victim"), 404, "not_found")
    assert victim.read_text() == "keep me"


def test_questions_keep_working_while_documents_change(client: TestClient) -> None:
    """Writers reload the index in place (atomically); each request reads its own snapshot."""
    failures: list[tuple[int, str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for q in (QUESTION, "福建海峡实验室位于哪里?"):
                r = client.post("/ask", json={"question": q})
                if r.status_code != 200:
                    failures.append((r.status_code, r.text[:200]))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(8):
            assert upload(client, f"doc{i}.txt", UPLOAD * 10 + str(i).encode()).status_code == 200
            if i % 2:
                assert client.delete(f"/documents/doc{i - 1}").status_code == 200
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert failures == []
    assert sorted(d for d in doc_ids(client) if d.startswith("doc")) == ["doc1", "doc3", "doc5", "doc7"]


def test_a_change_by_another_process_is_picked_up(client: TestClient, seed_index: Index,
                                                   fake_embedder: Any) -> None:
    other = Index.open(seed_index.directory, fake_embedder)  # e.g. `rag ingest` elsewhere
    ingest(other, [Document.from_text("外部", UPLOAD.decode())])
    assert "外部" in doc_ids(client)
    assert client.get("/health").json()["index"]["documents"] == 3


def test_startup_asks_in_each_language_before_serving(monkeypatch: pytest.MonkeyPatch,
                                                      seed_index: Index) -> None:
    """Lazily loaded resources (dictionaries, the embedder's first run) load at startup, once,
    not in each of the first concurrent requests' threads."""
    import rag.qa

    asked: list[str] = []
    real_ask = rag.qa.ask
    monkeypatch.setattr(rag.qa, "ask", lambda index, q, **kw: asked.append(q) or real_ask(index, q, **kw))
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive"), index=seed_index)
    assert asked == []
    with TestClient(app):
        assert len(asked) == 3
        assert any(has_cjk(q) for q in asked) and any(not has_cjk(q) for q in asked)
        assert any(agent_verb(q) for q in asked)  # jieba's tagger loads too


def test_rag_serve_keeps_idle_connections_longer_than_clients_do(monkeypatch: pytest.MonkeyPatch,
                                                                  seed_index: Index) -> None:
    """uvicorn's default (5 s) equals httpx's idle expiry: a client could reuse a connection
    the server is closing that instant (``ReadError`` under load). The server must outlast it."""
    import uvicorn

    from server.app import run

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    run(port=1, settings=Settings(index_dir=seed_index.directory, generator="extractive"))
    assert seen["timeout_keep_alive"] == Settings().keep_alive_s
    assert seen["timeout_keep_alive"] > 3 * httpx.Limits().keepalive_expiry  # type: ignore[operator]
    run(port=1, settings=Settings(index_dir=seed_index.directory, keep_alive_s=9))
    assert seen["timeout_keep_alive"] == 9


# ---- health, page, CORS, conversion --------------------------------------------------------------
def test_health_reports_index_stats(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["auth"] is False
    assert body["index"]["documents"] == 2 and body["index"]["chunks"] > 0
    assert body["index"]["embedder"] == "fake" and body["generator"] == "extractive"


def test_root_serves_the_chat_page(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/v1/chat/completions" in r.text and "<mark" not in r.text.split("<script>")[0]


def test_openapi_lists_the_contract_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ask", "/v1/chat/completions", "/v1/models", "/documents", "/documents/{doc_id}",
            "/jobs/{job_id}", "/health"} <= set(paths)


def test_cors_is_configurable(make_client: MakeClient) -> None:
    preflight = {"Origin": "http://notebook.test", "Access-Control-Request-Method": "POST"}
    open_client = make_client(cors_origins=["http://notebook.test"])
    r = open_client.options("/ask", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "http://notebook.test"
    closed = make_client()
    r = closed.get("/health", headers={"Origin": "http://notebook.test"})
    assert "access-control-allow-origin" not in r.headers


def test_convert_switches_script(client: TestClient) -> None:
    r = client.post("/convert", json={"texts": ["西咸新區", "量子计算"], "to": "simplified"})
    assert r.json()["texts"] == ["西咸新区", "量子计算"]
    r = client.post("/convert", json={"texts": ["量子计算研究"], "to": "traditional"})
    assert r.json()["texts"] == ["量子計算研究"]
    assert_error(client.post("/convert", json={"texts": ["x"], "to": "klingon"}), 422, "invalid_input")


# ---- the real thing: `rag serve` in a subprocess, the official openai client ---------------------
@pytest.mark.integration
def test_rag_serve_with_the_openai_client(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    from evals.load import serve

    with serve(tmp_path / "index", env={"RAG_EMBEDDER": "e5"}, timeout=180) as base:
        health = httpx.get(f"{base}/health").json()
        assert health["index"]["documents"] == 2 and health["index"]["embedder"] == "e5"
        oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in oa.models.list()] == ["wenda"]
        done = oa.chat.completions.create(model="wenda", messages=[{"role": "user", "content": QUESTION}])
        message = done.choices[0].message
        assert "量子" in (message.content or "")
        citations = (message.model_extra or {})["citations"]
        assert citations and all(c["quote"] for c in citations)
        stream = oa.chat.completions.create(
            model="wenda", stream=True,
            messages=[{"role": "user", "content": QUESTION},
                      {"role": "assistant", "content": message.content},
                      {"role": "user", "content": "它落户在哪里?"}])
        parts = list(stream)
        text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
        assert text.strip()
        final = parts[-1].model_extra or {}
        assert "秦创原" in (final["wenda"]["standalone_question"] or "")
        bad = httpx.post(f"{base}/ask", json={"question": ""})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
        assert "/v1/chat/completions" in httpx.get(f"{base}/").text
    assert (tmp_path / "index" / "docstore.sqlite").exists()
