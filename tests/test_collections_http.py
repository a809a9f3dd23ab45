"""Collections over HTTP (issue 14): the collection routes, each collection's documents and jobs,
``/ask`` with ``collection`` and ``filter``, the OpenAI models, and API keys with scopes (401, 403,
and 404 worded exactly as for a collection that does not exist), against the real app in-process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.errors import ConfigError
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.keys import add_key, remove_key
from rag.store.collections import create_collection
from rag.store.index import Index
from server.app import create_app

MakeClient = Callable[..., TestClient]
HR = {"leave": "人事制度：员工年假为每年十五天，由部门经理审批。", "pay": "人事制度：员工工资每月十日发放。"}
OPS = {"duty": "运维制度：值班每周轮换一次，交接在周一上午。"}
LEAVE_Q = "员工年假有几天?"


def ask(client: TestClient, question: str = LEAVE_Q, headers: dict[str, str] | None = None,
        **body: Any) -> Any:
    return client.post("/ask", json={"question": question, **body}, headers=headers)


def upload(client: TestClient, where: str, name: str, text: str, tags: list[str] | None = None,
           query: str = "?wait=true", **headers: str) -> Any:
    return client.post(f"{where}/documents{query}", files=[("files", (name, text.encode(), "text/plain"))],
                       data={"tags": tags} if tags else None, headers=headers)


def error(r: Any, status: int, code: str) -> str:
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    message: str = r.json()["error"]["message"]
    return message


@pytest.fixture
def root(seed_index: Index, fake_embedder: FakeEmbedder) -> Index:
    """The seed index as the default collection, plus ``hr`` and ``ops`` beside it."""
    for name, docs in (("hr", HR), ("ops", OPS)):
        collection = create_collection(seed_index.directory, name, fake_embedder)
        ingest(collection, [Document.from_text(d, t) for d, t in docs.items()], tags=[name])
    return seed_index


# ---- without a keys file ---------------------------------------------------------------------
def test_collection_lifecycle(make_client: MakeClient, root: Index) -> None:
    client = make_client()
    listed = client.get("/collections").json()["collections"]
    assert [(c["name"], c["documents"]) for c in listed] == [("default", 2), ("hr", 2), ("ops", 1)]
    assert all(c["rights"] == ["read", "write", "admin"] and c["chunks"] > 0 for c in listed)
    r = client.post("/collections", json={"name": "legal"})
    assert r.status_code == 201 and r.json() == {"name": "legal", "documents": 0, "chunks": 0}
    assert "exists" in error(client.post("/collections", json={"name": "legal"}), 409, "exists")
    error(client.post("/collections", json={"name": "default"}), 409, "exists")
    for bad in ("Legal", "../x", "a/b", ".x", "x" * 65):
        assert "invalid collection name" in error(client.post("/collections", json={"name": bad}),
                                                  400, "invalid_input")
    r = upload(client, "/collections/legal", "contract.txt", "合同期限为三年，自签字之日起生效。",
               tags=["2024", "合同"])
    assert r.status_code == 200 and r.json()["added"] == ["contract"], r.text
    (doc,) = client.get("/collections/legal/documents").json()["documents"]
    assert doc["doc_id"] == "contract" and doc["tags"] == ["2024", "合同"] and doc["ingested_at"] > 0
    assert doc["path"] == "uploads/contract.txt"
    assert (root.directory / "collections" / "legal" / "uploads" / "contract.txt").is_file()
    assert not (root.directory / "uploads").exists()  # nothing in the default's folder
    assert all(d["tags"] == [] and "ingested_at" in d for d in client.get("/documents").json()["documents"])
    answer = ask(client, "合同的期限是几年?", collection="legal").json()
    (cited, *_) = answer["citations"]
    assert cited["doc_id"] == "contract" and cited["tags"] == ["2024", "合同"]
    assert all(p["doc_id"] == "contract" for p in answer["passages"])

    job = upload(client, "/collections/legal", "nda.txt", "保密协议：期限五年。", query="").json()["job"]
    location = f"/collections/legal/jobs/{job['id']}"
    for _ in range(200):
        if client.get(location).json()["job"]["status"] == "done":
            break
    assert client.get(location).json()["job"]["result"]["added"] == ["nda"]
    error(client.get(f"/jobs/{job['id']}"), 404, "not_found")  # another collection's job
    error(client.get(f"/collections/hr/jobs/{job['id']}"), 404, "not_found")
    assert client.delete("/collections/legal/documents/nda").json() == {"deleted": "nda"}
    error(client.delete("/collections/legal/documents/nda"), 404, "not_found")

    assert "confirm" in error(client.delete("/collections/legal"), 400, "invalid_input")
    error(client.delete("/collections/legal?confirm=hr"), 400, "invalid_input")
    error(client.delete("/collections/default?confirm=default"), 400, "invalid_input")
    assert client.delete("/collections/legal?confirm=legal").json() == {"dropped": "legal"}
    assert error(client.get("/collections/legal/documents"), 404, "not_found") == "no collection 'legal'"
    error(ask(client, collection="legal"), 404, "not_found")
    assert not (root.directory / "collections" / "legal").exists()
    assert [c["name"] for c in client.get("/collections").json()["collections"]] == ["default", "hr", "ops"]
    assert client.post("/collections", json={"name": "legal"}).json()["documents"] == 0  # made anew


def test_ask_with_a_collection_and_a_filter(make_client: MakeClient, root: Index) -> None:
    client = make_client()
    answer = ask(client, collection="hr").json()
    assert not answer["refused"] and "十五天" in answer["answer"]
    assert {p["doc_id"] for p in answer["passages"]} <= set(HR)
    only_pay = ask(client, collection="hr", filter={"doc_ids": ["pay"]}).json()
    assert {p["doc_id"] for p in only_pay["passages"]} == {"pay"} and "十五天" not in only_pay["answer"]
    assert ask(client, collection="hr", filter={"tags_any": ["ops"]}).json()["passages"] == []
    seeds_question = ask(client, "秦创原量子信息科技联合创新中心聚焦哪些领域?", collection="hr").json()
    assert seeds_question["refused"] and {p["doc_id"] for p in seeds_question["passages"]} <= set(HR)
    error(ask(client, collection="hr", filter={"tags_any": ["a,b"]}), 400, "invalid_input")
    error(ask(client, collection="hr", filter={"bogus": 1}), 422, "invalid_input")
    error(ask(client, collection="Nope"), 400, "invalid_input")
    assert error(ask(client, collection="nope"), 404, "not_found") == "no collection 'nope'"


def test_each_collection_is_an_openai_model(make_client: MakeClient, root: Index) -> None:
    client = make_client()
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["wenda", "wenda/hr", "wenda/ops"]

    def chat(model: str, **extra: Any) -> Any:
        return client.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": LEAVE_Q}], **extra})

    body = chat("wenda/hr").json()
    assert body["model"] == "wenda/hr" and {c["doc_id"] for c in body["citations"]} <= set(HR)
    assert body["citations"] and body["citations"][0]["tags"] == ["hr"]
    assert {p["doc_id"] for p in chat("wenda/hr", filter={"doc_ids": ["pay"]}).json()["wenda"]["passages"]} \
        == {"pay"}
    stream = chat("wenda/hr", stream=True)
    assert stream.status_code == 200 and '"doc_id": "leave"' in stream.text and "data: [DONE]" in stream.text
    default_docs = {d.doc_id for d in root.documents()}
    assert {p["doc_id"] for p in chat("wenda").json()["wenda"]["passages"]} <= default_docs
    missing = error(chat("wenda/nope"), 404, "model_not_found")
    assert missing == error(chat("wenda/nope", stream=True), 404, "model_not_found")
    assert "'wenda/nope'" in missing and "/v1/models" in missing
    error(chat("gpt-4o"), 404, "model_not_found")
    error(chat("wenda/hr", filter={"tags_any": "hr"}), 422, "invalid_input")


def test_admin_routes_need_the_api_key_without_a_keys_file(make_client: MakeClient, root: Index) -> None:
    client, auth = make_client(api_key="s3cret"), {"Authorization": "Bearer s3cret"}
    error(client.post("/collections", json={"name": "legal"}), 401, "unauthorized")
    error(client.delete("/collections/hr?confirm=hr"), 401, "unauthorized")
    error(upload(client, "/collections/hr", "a.txt", "文本。"), 401, "unauthorized")
    assert [c["rights"] for c in client.get("/collections").json()["collections"]] == [["read"]] * 3
    assert client.get("/collections/hr/documents").status_code == 200
    assert ask(client, collection="hr").status_code == 200
    assert client.post("/collections", json={"name": "legal"}, headers=auth).status_code == 201
    assert client.get("/collections", headers=auth).json()["collections"][0]["rights"] == ["read", "write",
                                                                                           "admin"]
    assert client.delete("/collections/legal?confirm=legal", headers=auth).status_code == 200


# ---- with a keys file ------------------------------------------------------------------------
GRANTS = {"admin": {"*": ["admin"]}, "reader": {"hr": ["read"]}, "writer": {"hr": ["write"]},
          "home": {"default": ["read"], "ops": ["read"]}}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def keyed(make_client: MakeClient, root: Index,
          keys_file: Path) -> tuple[TestClient, dict[str, dict[str, str]]]:
    secrets = {name: add_key(keys_file, name, grants) for name, grants in GRANTS.items()}
    client = make_client(keys_file=keys_file)
    return client, {name: {"Authorization": f"Bearer {s}"} for name, s in secrets.items()}


def test_keys_lock_every_route_but_liveness_the_page_and_the_docs(keyed: Any) -> None:
    client, _ = keyed
    for bad in ({}, {"Authorization": "Bearer wk_nope"}, {"Authorization": "Basic abc"}):
        for method, path in [("GET", "/collections"), ("GET", "/documents"), ("GET", "/v1/models"),
                             ("GET", "/collections/hr/documents"), ("GET", "/jobs/x"), ("GET", "/nope")]:
            error(client.request(method, path, headers=bad), 401, "unauthorized")
        error(client.post("/ask", json={"question": LEAVE_Q}, headers=bad), 401, "unauthorized")
        r = client.post("/convert", json={"texts": ["x"], "to": "simplified"}, headers=bad)
        error(r, 401, "unauthorized")
        error(client.post("/collections", json={"name": "x"}, headers=bad), 401, "unauthorized")
        assert client.get("/health", headers=bad).json() == {"status": "ok"}
    assert client.get("/").status_code == 200 and client.get("/openapi.json").status_code == 200


def test_scoped_keys_see_only_their_collections(keyed: Any) -> None:
    client, keys = keyed
    reader, writer, home, admin = keys["reader"], keys["writer"], keys["home"], keys["admin"]

    def names(headers: dict[str, str]) -> list[tuple[str, list[str]]]:
        listed = client.get("/collections", headers=headers).json()["collections"]
        return [(c["name"], c["rights"]) for c in listed]

    assert names(reader) == [("hr", ["read"])] and names(writer) == [("hr", ["read", "write"])]
    assert names(home) == [("default", ["read"]), ("ops", ["read"])] and len(names(admin)) == 3
    assert [m["id"] for m in client.get("/v1/models", headers=reader).json()["data"]] == ["wenda/hr"]
    assert [m["id"] for m in client.get("/v1/models", headers=home).json()["data"]] == ["wenda", "wenda/ops"]
    assert "index" not in client.get("/health", headers=reader).json()
    assert client.get("/health", headers=home).json()["index"]["documents"] == 2

    # a collection the key cannot read is answered word for word like one that does not exist
    for name in ("ops", "default", "nope"):
        assert error(ask(client, collection=name, headers=reader), 404, "not_found") == \
            f"no collection {name!r}"
        assert error(client.get(f"/collections/{name}/documents", headers=reader), 404, "not_found") == \
            f"no collection {name!r}"
        assert error(client.delete(f"/collections/{name}?confirm={name}", headers=reader), 404,
                     "not_found") == f"no collection {name!r}"
        assert error(upload(client, f"/collections/{name}", "a.txt", "文本。", **reader), 404,
                     "not_found") == f"no collection {name!r}"
    error(client.get("/documents", headers=reader), 404, "not_found")
    chat = {"messages": [{"role": "user", "content": LEAVE_Q}]}
    unreadable = error(client.post("/v1/chat/completions", json={**chat, "model": "wenda/ops"},
                                   headers=reader), 404, "model_not_found")
    missing = error(client.post("/v1/chat/completions", json={**chat, "model": "wenda/zzz"},
                                headers=reader), 404, "model_not_found")
    assert unreadable.replace("ops", "zzz") == missing

    # readable, but not the right: 403
    assert ask(client, collection="hr", headers=reader).json()["citations"]
    assert "write" in error(upload(client, "/collections/hr", "a.txt", "文本。", **reader), 403, "forbidden")
    # refused before the body is read: a body over the upload limit gets the 403, not a 413
    big = "文" * 3_000_000  # 9 MB, over RAG_MAX_UPLOAD_BYTES (5 MB)
    assert "write" in error(upload(client, "/collections/hr", "a.txt", big, **reader), 403, "forbidden")
    error(upload(client, "/collections/ops", "a.txt", big, **reader), 404, "not_found")
    error(client.delete("/collections/hr/documents/leave", headers=reader), 403, "forbidden")
    error(client.delete("/collections/hr?confirm=hr", headers=writer), 403, "forbidden")
    error(client.post("/collections", json={"name": "legal"}, headers=writer), 403, "forbidden")
    error(client.post("/collections", json={"name": "hr"}, headers=writer), 403, "forbidden")  # not 409

    # what each key may do, it can
    r = upload(client, "/collections/hr", "new.txt", "人事制度：试用期为三个月。", query="", **writer)
    job = r.json()["job"]["id"]
    assert r.headers["location"] == f"/collections/hr/jobs/{job}"
    assert client.get(f"/collections/hr/jobs/{job}", headers=writer).status_code == 200
    error(client.get(f"/collections/hr/jobs/{job}", headers=reader), 403, "forbidden")
    error(client.post("/collections", json={"name": "hr"}, headers=admin), 409, "exists")
    assert client.post("/collections", json={"name": "legal"}, headers=admin).status_code == 201
    assert client.delete("/collections/legal?confirm=legal", headers=admin).json() == {"dropped": "legal"}


def test_the_keys_file_is_reloaded_when_it_changes(keyed: Any, keys_file: Path) -> None:
    client, keys = keyed
    new = {"Authorization": f"Bearer {add_key(keys_file, 'late', {'ops': ['read']})}"}
    assert [c["name"] for c in client.get("/collections", headers=new).json()["collections"]] == ["ops"]
    assert remove_key(keys_file, "late")
    error(client.get("/collections", headers=new), 401, "unauthorized")
    good = keys_file.read_text()
    keys_file.write_text("{not json")  # broken: everything is locked, not opened, not kept as it was
    error(client.get("/collections", headers=keys["admin"]), 401, "unauthorized")
    assert client.get("/health", headers=keys["admin"]).json() == {"status": "ok"}
    keys_file.unlink()
    error(client.get("/collections", headers=keys["admin"]), 401, "unauthorized")
    keys_file.write_text(good)
    assert client.get("/collections", headers=keys["admin"]).status_code == 200


@pytest.mark.parametrize("text", [None, "{not json", '{"keys": [{"name": "x"}]}'])
def test_a_bad_keys_file_stops_startup(seed_index: Index, keys_file: Path, text: str | None) -> None:
    if text is not None:
        keys_file.write_text(text)
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive", keys_file=keys_file),
                     index=seed_index)
    with pytest.raises(ConfigError, match="keys file"), TestClient(app):
        pass


def test_secrets_are_never_logged(keyed: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, keys = keyed
    caplog.set_level(logging.DEBUG)
    for headers in (*keys.values(), {"Authorization": "Bearer wk_guessed-secret"}):
        client.get("/collections", headers=headers)
        ask(client, collection="ops", headers=headers)
        upload(client, "/collections/hr", "a.txt", "文本。", **headers)
    secrets = [h["Authorization"].split()[1] for h in keys.values()] + ["wk_guessed-secret"]
    assert caplog.records and not any(s in caplog.text for s in secrets)

