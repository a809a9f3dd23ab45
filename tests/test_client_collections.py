"""Collections and filters through both clients: ``client.collection(name)`` scoping, the
collection admin calls, ``filter=`` and ``ingest(tags=)``, against the real app (in-process
transport, and once on a real socket) and in-process; the exact requests the HTTP client sends
(a mock transport); the llama-index retriever over a collection with a filter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from conftest import FakeEmbedder, serving
from fastapi.testclient import TestClient

from rag.client import AuthError, Client, ForbiddenError, LocalClient
from rag.config import Settings
from rag.errors import InputError, NotFoundError
from rag.schema import Answer
from rag.store.filters import Filter
from rag.store.index import Index
from server.app import create_app

QUESTION = "员工的年假和工资怎么安排?"
DOCS = {
    "leave.md": "---\ntitle: 休假制度\ntags: [policy]\n---\n员工年假为每年十五天，由部门经理审批。\n",
    "pay.txt": "员工工资每月十日发放，年终奖在一月发放。\n",
    "travel.txt": "员工出差补贴每天三百元，年假期间不发放补贴。\n",
}

AnyClient = Client | LocalClient


def settings_for(index: Index, **overrides: Any) -> Settings:
    return Settings(index_dir=index.directory, generator="extractive", **overrides)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "hr-docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


@pytest.fixture
def app_http(seed_index: Index) -> Iterator[httpx.Client]:
    with TestClient(create_app(settings_for(seed_index, api_key="k3y"), index=seed_index)) as http:
        yield cast(httpx.Client, http)


@pytest.fixture(params=["http", "local"])
def any_client(request: pytest.FixtureRequest, seed_index: Index) -> AnyClient:
    if request.param == "local":
        return LocalClient(seed_index, settings_for(seed_index))
    return Client("http://testserver", api_key="k3y", http=request.getfixturevalue("app_http"))


@pytest.fixture
def hr(any_client: AnyClient, folder: Path) -> AnyClient:
    """Collection ``hr``: leave (front matter tag ``policy``), pay tagged ``money``, travel tagged
    ``money`` and ``trip``."""
    any_client.create_collection("hr")
    scoped = any_client.collection("hr")
    scoped.ingest([folder / "leave.md"])
    scoped.ingest([folder / "pay.txt"], tags=["money"])
    scoped.ingest([folder / "travel.txt"], tags=["money", "trip"])
    return scoped


# ---- both clients, one API -----------------------------------------------------------------------
def test_collection_lifecycle(any_client: AnyClient, folder: Path) -> None:
    before = any_client.collections()
    assert [c["name"] for c in before] == ["default"] and before[0]["documents"] == 2
    assert "read" in before[0]["rights"]
    assert any_client.create_collection("hr") == {"name": "hr", "documents": 0, "chunks": 0}
    with pytest.raises(InputError, match="exists"):
        any_client.create_collection("hr")

    hr = any_client.collection("hr")
    assert hr.documents() == []
    report = hr.ingest([folder], tags=["2024"])
    assert sorted(report["added"]) == ["leave", "pay", "travel"]
    assert {d["doc_id"]: list(d["tags"]) for d in hr.documents()} == {
        "leave": ["2024", "policy"], "pay": ["2024"], "travel": ["2024"]}
    assert len(any_client.documents()) == 2  # the default collection is untouched
    listed = {c["name"]: c for c in any_client.collections()}
    assert list(listed) == ["default", "hr"] and listed["hr"]["documents"] == 3
    assert listed["hr"]["chunks"] >= 3

    retagged = hr.ingest([folder / "pay.txt"], tags=["2025"])
    assert retagged["retagged"] == ["pay"] and retagged["chunks_embedded"] == 0
    assert hr.ingest([folder / "leave.md"], tags=[])["retagged"] == ["leave"]  # front matter's stay
    assert hr.ingest([folder / "travel.txt"])["skipped"] == ["travel"]  # no tags given: kept
    assert {d["doc_id"]: list(d["tags"]) for d in hr.documents()} == {
        "leave": ["policy"], "pay": ["2025"], "travel": ["2024"]}
    a = hr.ask("员工工资每月几号发放?")
    assert not a.refused and a.citations[0].doc_id == "pay" and a.citations[0].tags == ["2025"]
    hr.delete("pay")
    assert "pay" not in {d["doc_id"] for d in hr.documents()}
    with pytest.raises(NotFoundError):
        hr.delete("pay")

    any_client.drop_collection("hr")
    assert [c["name"] for c in any_client.collections()] == ["default"]
    with pytest.raises(NotFoundError, match="no collection 'hr'"):
        any_client.drop_collection("hr")
    with pytest.raises(InputError, match="default collection cannot be dropped"):
        any_client.drop_collection("default")


def test_a_missing_collection_is_not_found(any_client: AnyClient) -> None:
    with pytest.raises(NotFoundError, match="no collection 'nope'"):
        any_client.collection("nope").ask(QUESTION)
    with pytest.raises(NotFoundError):
        any_client.collection("nope").documents()
    with pytest.raises(InputError, match="invalid collection name"):
        any_client.create_collection("Bad Name")


@pytest.mark.parametrize(("where", "allowed"), [
    ({"tags_any": ["trip"]}, {"travel"}),
    ({"tags_any": ["trip", "policy"]}, {"travel", "leave"}),
    ({"tags_all": ["money", "trip"]}, {"travel"}),
    ({"doc_ids": ["pay"]}, {"pay"}),
    ({"path_prefix": "lea"}, {"leave"}),
    (Filter(tags_any=("money",)), {"pay", "travel"}),
], ids=["tags_any", "tags_any-2", "tags_all", "doc_ids", "path_prefix", "Filter"])
def test_filters_limit_the_passages(hr: AnyClient, where: Any, allowed: set[str]) -> None:
    assert {p.doc_id for p in hr.ask(QUESTION, top_k=3).passages} == {"leave", "pay", "travel"}
    a = hr.ask(QUESTION, top_k=3, filter=where)
    assert a.passages and {p.doc_id for p in a.passages} == allowed
    assert {c.doc_id for c in a.citations} <= allowed
    final = list(hr.stream(QUESTION, filter=where))[-1]
    assert isinstance(final, Answer) and {p.doc_id for p in final.passages} <= allowed
    chat = hr.chat([{"role": "user", "content": QUESTION}], filter=where)
    assert chat.passages and {p.doc_id for p in chat.passages} <= allowed


def test_a_filter_nothing_matches_refuses(hr: AnyClient) -> None:
    a = hr.ask(QUESTION, filter={"tags_any": ["nope"]})
    assert a.refused and a.passages == [] and a.citations == []


def test_a_bad_filter_is_an_input_error(hr: AnyClient) -> None:
    with pytest.raises(InputError, match="unknown filter field"):
        hr.ask(QUESTION, filter={"tags": ["money"]})
    with pytest.raises(InputError, match="list of strings"):
        hr.stream(QUESTION, filter={"doc_ids": "pay"}).__next__()


def test_scoped_history_and_stream(hr: AnyClient) -> None:
    items = list(hr.stream("员工出差补贴每天多少?"))
    assert isinstance(items[-1], Answer) and items[-1].citations[0].doc_id == "travel"
    assert all(isinstance(i, str) for i in items[:-1]) and items[:-1]


def test_same_answer_over_http_and_in_process(seed_index: Index, app_http: httpx.Client,
                                              folder: Path) -> None:
    local = LocalClient(seed_index, settings_for(seed_index))
    local.create_collection("hr")
    local.collection("hr").ingest([folder], tags=["x"])
    remote = Client("http://testserver", api_key="k3y", http=app_http).collection("hr")
    where = {"doc_ids": ["pay", "travel"]}
    there, here = remote.ask(QUESTION, filter=where), local.collection("hr").ask(QUESTION, filter=where)
    assert (there.answer, there.citations, there.passages) == (here.answer, here.citations, here.passages)


# ---- HTTP specifics ------------------------------------------------------------------------------
def test_over_a_real_socket(seed_index: Index, folder: Path) -> None:
    app = create_app(settings_for(seed_index, api_key="k3y"), index=seed_index)
    with serving(app) as url, Client(url, api_key="k3y") as c:
        c.create_collection("hr")
        hr = c.collection("hr")
        assert sorted(hr.ingest([folder], tags=["2024"])["added"]) == ["leave", "pay", "travel"]
        a = hr.ask("员工年假有几天?", filter={"tags_all": ["2024", "policy"]})
        assert not a.refused and {p.doc_id for p in a.passages} == {"leave"}
        assert "十五天" in a.answer and a.citations[0].tags == ["2024", "policy"]
        final = list(hr.stream("员工年假有几天?", filter={"doc_ids": ["leave"]}))[-1]
        assert isinstance(final, Answer) and final.citations[0].doc_id == "leave"
        with pytest.raises(AuthError):
            Client(url).collection("hr").ingest([folder])


class Recorder:
    """A mock transport answering like the server, recording each request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/v1/chat/completions" and json.loads(request.content).get("stream"):
            body = ('data: {"choices": [{"delta": {"content": "答"}}]}\n\n'
                    f'data: {json.dumps({"wenda": {"question": "q", "answer": "答"}})}\n\ndata: [DONE]\n\n')
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        if path == "/v1/chat/completions":
            return httpx.Response(200, json={"wenda": {"question": "q", "answer": "答"}})
        if path == "/ask":
            return httpx.Response(200, json={"question": "q", "answer": "答"})
        if path.endswith("/documents") and request.method == "POST":
            return httpx.Response(202, json={"job": {"id": "j1", "status": "queued"}})
        if "/jobs/" in path:
            return httpx.Response(200, json={"job": {"id": "j1", "status": "done", "result": {}}})
        if path.endswith("/documents"):
            return httpx.Response(200, json={"documents": []})
        if path == "/collections" and request.method == "GET":
            return httpx.Response(200, json={"collections": []})
        if path == "/collections":
            return httpx.Response(201, json={"name": "hr", "documents": 0, "chunks": 0})
        return httpx.Response(200, json={})

    def sent(self) -> list[tuple[str, str, Any]]:
        out = []
        for r in self.requests:
            is_json = r.headers.get("content-type") == "application/json"
            body = json.loads(r.content) if is_json else None
            for key in ("history", "messages"):  # what the other tests check
                if body is not None:
                    body.pop(key, None)
            out.append((r.method, r.url.raw_path.decode(), body))  # path and query, as sent
        return out


def test_the_requests_each_scope_sends(folder: Path) -> None:
    recorder = Recorder()
    c = Client("http://x", http=httpx.Client(base_url="http://x", transport=httpx.MockTransport(recorder)))
    where = {"tags_any": ["money"]}
    full = {"doc_ids": [], "path_prefix": "", "tags_any": ["money"], "tags_all": []}
    for scoped in (c, c.collection("default")):  # the default collection: today's routes and bodies
        scoped.ask("q")
        scoped.chat([{"role": "user", "content": "q"}])
        list(scoped.stream("q"))
        scoped.ingest([folder / "pay.txt"])
        scoped.documents()
        scoped.delete("a/b")
    hr = c.collection("hr")
    hr.ask("q", top_k=2, filter=where)
    hr.chat([{"role": "user", "content": "q"}], filter=Filter.parse(where))
    list(hr.stream("q", filter=where))
    hr.ingest([folder / "pay.txt"], tags=["money", "2024"])
    hr.documents()
    hr.delete("a/b")
    c.collections()
    c.create_collection("hr")
    c.drop_collection("hr")
    default = [
        ("POST", "/ask", {"question": "q"}),
        ("POST", "/v1/chat/completions", {"model": "wenda"}),
        ("POST", "/v1/chat/completions", {"model": "wenda", "stream": True}),
        ("POST", "/documents", None), ("GET", "/jobs/j1", None),
        ("GET", "/documents", None),
        ("DELETE", "/documents/a%2Fb", None),
    ]
    assert recorder.sent() == [*default, *default,
        ("POST", "/ask", {"question": "q", "collection": "hr", "top_k": 2, "filter": full}),
        ("POST", "/v1/chat/completions", {"model": "wenda/hr", "filter": full}),
        ("POST", "/v1/chat/completions", {"model": "wenda/hr", "stream": True, "filter": full}),
        ("POST", "/collections/hr/documents", None), ("GET", "/collections/hr/jobs/j1", None),
        ("GET", "/collections/hr/documents", None),
        ("DELETE", "/collections/hr/documents/a%2Fb", None),
        ("GET", "/collections", None),
        ("POST", "/collections", {"name": "hr"}),
        ("DELETE", "/collections/hr?confirm=hr", None),
    ]
    uploads = [r for r in recorder.requests if r.url.path.endswith("/documents") and r.method == "POST"]
    assert b'name="tags"' not in uploads[0].content
    assert uploads[-1].content.count(b'name="tags"') == 2 and b"\r\n\r\n2024\r\n" in uploads[-1].content


@pytest.mark.parametrize(("status", "code", "error"), [
    (401, "unauthorized", AuthError), (403, "forbidden", ForbiddenError),
    (404, "not_found", NotFoundError), (404, "model_not_found", NotFoundError),
    (409, "exists", InputError),
])
def test_collection_errors_map_back(status: int, code: str, error: type[Exception]) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": code, "message": "why"}})

    c = Client("http://x", http=httpx.Client(base_url="http://x", transport=httpx.MockTransport(reply)))
    with pytest.raises(error, match="why"):
        c.collection("hr").ask("q")


# ---- llama-index ---------------------------------------------------------------------------------
def test_wenda_retriever_over_a_collection_with_a_filter(tmp_path: Path, folder: Path,
                                                         fake_embedder: FakeEmbedder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.llama import WendaRetriever

    settings = Settings(index_dir=tmp_path / "index", seeds_dir=tmp_path / "no-seeds",
                        generator="extractive")
    monkeypatch.setattr("rag.models.embed.load_embedder", lambda name: fake_embedder)
    local = LocalClient(Index.open(settings.index_dir, fake_embedder), settings)
    local.create_collection("hr")
    local.collection("hr").ingest([folder], tags=["2024"])
    local.collection("hr").ingest([folder / "pay.txt"], tags=["money"])

    every = WendaRetriever.from_settings(settings, collection="hr", top_k=3).retrieve(QUESTION)
    assert {n.node.metadata["doc_id"] for n in every} == {"leave", "pay", "travel"}
    money = WendaRetriever.from_settings(settings, collection="hr", filter={"tags_any": ["money"]})
    nodes = money.retrieve(QUESTION)
    assert [n.node.metadata["doc_id"] for n in nodes] == ["pay"]
    assert "十日" in nodes[0].node.get_content()
    assert WendaRetriever(local.collection("hr").index, filter=Filter(doc_ids=("leave",))
                          ).retrieve(QUESTION)[0].node.metadata["doc_id"] == "leave"
    with pytest.raises(NotFoundError):
        WendaRetriever.from_settings(settings, collection="nope")
