"""``rag.client``: the HTTP ``Client`` against the real app (in-process transport), the local
client with the same API, error mapping, and the llama-index retriever."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from conftest import FakeEmbedder
from fastapi.testclient import TestClient
from test_jobs import Gate

from evals.load import free_port
from rag.client import APIError, AuthError, Client, LocalClient, split_messages
from rag.config import Settings
from rag.errors import DocumentError, DocumentTooLargeError, InputError, NotFoundError
from rag.schema import Answer, Message
from rag.store.index import Index
from server.app import create_app

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
FOLLOW_UP = "它落户在哪里?"
TEXT = "福建海峡实验室位于福州市仓山区，主要研究海洋信息技术。实验室成立于二〇二三年三月。\n"


def settings_for(index: Index, **overrides: object) -> Settings:
    return Settings(index_dir=index.directory, generator="extractive", **overrides)  # type: ignore[arg-type]


@pytest.fixture
def app_http(seed_index: Index) -> Iterator[httpx.Client]:
    """The real app behind Starlette's in-process transport (an httpx-compatible client)."""
    with TestClient(create_app(settings_for(seed_index, api_key="k3y"), index=seed_index)) as http:
        yield cast(httpx.Client, http)


@pytest.fixture
def client(app_http: httpx.Client) -> Client:
    return Client("http://testserver", api_key="k3y", http=app_http)


@pytest.fixture
def local(seed_index: Index) -> LocalClient:
    return LocalClient(seed_index, settings_for(seed_index))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "upload"
    (docs / ".hidden").mkdir(parents=True)
    (docs / "海峡.txt").write_text(TEXT, encoding="utf-8")
    (docs / "notes.md").write_text("# 湿地\n\n闽江口湿地公园位于长乐区。\n", encoding="utf-8")
    (docs / ".hidden" / "secret.txt").write_text("不应上传", encoding="utf-8")
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4")
    return docs


# ---- both clients, one API ---------------------------------------------------------------------
@pytest.fixture(params=["http", "local"])
def any_client(request: pytest.FixtureRequest, client: Client, local: LocalClient) -> Client | LocalClient:
    return client if request.param == "http" else local


def test_ask_returns_an_answer(any_client: Client | LocalClient, seed_index: Index) -> None:
    a = any_client.ask(QUESTION, top_k=3)
    assert isinstance(a, Answer) and not a.refused and len(a.passages) == 3
    assert all(seed_index.text(c.doc_id)[c.start:c.end] == c.quote for c in a.citations)


def test_history_drives_the_follow_up(any_client: Client | LocalClient) -> None:
    history: list[Message | dict[str, str]] = [
        {"role": "user", "content": QUESTION}, Message(role="assistant", content="量子通信等。")]
    a = any_client.ask(FOLLOW_UP, history=history)
    assert "秦创原" in (a.standalone_question or "")
    b = any_client.chat([{"role": "system", "content": "简洁"}, *history,
                         {"role": "user", "content": FOLLOW_UP}])
    assert b.standalone_question == a.standalone_question and b.answer == a.answer


def test_stream_yields_text_then_the_answer(any_client: Client | LocalClient) -> None:
    items = list(any_client.stream(QUESTION))
    assert isinstance(items[-1], Answer) and items[-1].citations
    assert items[:-1] and all(isinstance(i, str) for i in items[:-1])
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "量子通信等。"}]
    final = list(any_client.stream(FOLLOW_UP, history=history))[-1]
    assert isinstance(final, Answer) and "秦创原" in (final.standalone_question or "")


def test_ingest_documents_delete(any_client: Client | LocalClient, folder: Path) -> None:
    before = {d["doc_id"] for d in any_client.documents()}
    files = [folder / "海峡.txt", folder / "notes.md"]
    report = any_client.ingest(files)
    assert sorted(report["added"]) == ["notes", "海峡"]
    assert {d["doc_id"] for d in any_client.documents()} == before | {"海峡", "notes"}
    a = any_client.ask("福建海峡实验室位于哪里?")
    assert a.citations and a.citations[0].doc_id == "海峡"
    any_client.delete("海峡")
    assert "海峡" not in {d["doc_id"] for d in any_client.documents()}
    with pytest.raises(NotFoundError):
        any_client.delete("海峡")


def test_errors_map_back_to_rag_errors(any_client: Client | LocalClient) -> None:
    with pytest.raises(InputError, match="empty"):
        any_client.ask("  ")
    with pytest.raises(InputError):
        any_client.ask(QUESTION, top_k=0)
    with pytest.raises(InputError):
        any_client.chat([{"role": "system", "content": "no question here"}])
    with pytest.raises(DocumentError):
        any_client.ingest([Path("/nonexistent/file.txt")])


def test_same_answer_over_http_and_in_process(client: Client, local: LocalClient) -> None:
    remote, here = client.ask(QUESTION), local.ask(QUESTION)
    assert remote.answer == here.answer and remote.citations == here.citations


# ---- HTTP specifics ------------------------------------------------------------------------------
def test_http_ingest_walks_folders(client: Client, folder: Path, seed_index: Index) -> None:
    (folder / "scan.pdf").unlink()
    report = client.ingest([folder])
    assert sorted(report["documents"]) == ["notes", "海峡"]
    assert sorted(p.name for p in (seed_index.directory / "uploads").iterdir()) == ["notes.md", "海峡.txt"]
    assert client.health()["index"]["documents"] == 4


def test_http_unusable_upload_is_a_document_error(client: Client, folder: Path) -> None:
    with pytest.raises(DocumentError, match="not a valid PDF"):  # the bytes are "%PDF" and garbage
        client.ingest([folder / "scan.pdf"])
    (folder / "setup.exe").write_bytes(b"MZ\x90\x00" * 10)
    with pytest.raises(DocumentError, match="unsupported"):
        client.ingest([folder / "setup.exe"])


def test_wrong_or_missing_key_is_an_auth_error(app_http: httpx.Client, folder: Path) -> None:
    anonymous = Client("http://testserver", http=app_http)
    assert anonymous.documents()  # reads need no key
    with pytest.raises(AuthError):
        anonymous.ingest([folder / "海峡.txt"])
    with pytest.raises(AuthError):
        Client("http://testserver", api_key="nope", http=app_http).delete("海峡")


def test_http_ingest_cancels_its_job_past_the_timeout(client: Client, app_http: httpx.Client,
                                                       folder: Path, seed_index: Index,
                                                       fake_embedder: FakeEmbedder) -> None:
    gate = Gate(fake_embedder)  # the job waits in its embedder until the test lets it go
    generation = seed_index.current_generation()
    with pytest.raises(APIError, match=r"not done after 0\.3 s: cancelled") as caught:
        client.ingest([folder / "海峡.txt"], timeout=0.3)
    assert caught.value.code == "timeout"
    job_id = re.search(r"job (\w+)", str(caught.value)).group(1)  # type: ignore[union-attr]
    gate.let(10)
    for _ in range(200):
        job = app_http.get(f"/jobs/{job_id}", headers={"Authorization": "Bearer k3y"}).json()["job"]
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "cancelled"
    assert seed_index.current_generation() == generation
    assert "海峡" not in {d["doc_id"] for d in client.documents()}


def test_http_ingest_raises_the_failed_job_error(seed_index: Index, folder: Path) -> None:
    settings = settings_for(seed_index, api_key="k3y", max_job_chunks=1, chunk_size=20)
    with TestClient(create_app(settings, index=seed_index)) as http:
        c = Client("http://testserver", api_key="k3y", http=cast(httpx.Client, http))
        with pytest.raises(DocumentTooLargeError, match="RAG_MAX_JOB_CHUNKS"):
            c.ingest([folder / "海峡.txt"])


def test_unreachable_server_is_an_api_error() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with Client(nobody, timeout=2) as c, pytest.raises(APIError, match="cannot reach"):
        c.ask(QUESTION)


def test_split_messages() -> None:
    question, history = split_messages([
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "第一"}, {"type": "image_url"}]},
        {"role": "assistant", "content": "答"},
        {"role": "user", "content": "第二"},
        {"role": "tool", "content": "ignored"},
    ])
    assert question == "第二"
    assert history == [Message(role="user", content="第一"), Message(role="assistant", content="答")]
    with pytest.raises(InputError):
        split_messages([{"role": "assistant", "content": "x"}])


# ---- Client.local with the real bundled model --------------------------------------------------
@pytest.mark.integration
def test_client_local_builds_and_answers(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "index", seeds_dir=ROOT / "seeds", generator="extractive")
    with Client.local(settings) as c:
        assert len(c.documents()) == 2
        a = c.ask(QUESTION)
        assert not a.refused and "量子" in a.answer


# ---- llama-index ---------------------------------------------------------------------------------
def test_wenda_retriever_in_a_llama_index_query_engine(seed_index: Index) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    from rag.llama import WendaRetriever

    retriever = WendaRetriever(seed_index, top_k=3)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 3 and nodes[0].score is not None
    assert [n.score for n in nodes] == sorted((n.score or 0 for n in nodes), reverse=True)
    for n in nodes:
        meta = n.node.metadata
        assert set(meta) == {"doc_id", "chunk_id", "start", "end"}
        assert n.node.get_content() == seed_index.text(meta["doc_id"])[meta["start"]:meta["end"]]
        assert n.node.node_id == meta["chunk_id"]
    assert "量子" in nodes[0].node.get_content()

    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    assert [s.node.node_id for s in response.source_nodes] == [n.node.node_id for n in nodes]
    assert "量子" in str(response)  # MockLLM echoes the prompt, which holds the passages
    assert retriever.retrieve("   ") == []
