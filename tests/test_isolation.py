"""Isolation between collections, as a property: for random keys (any grants, or no key, or a
wrong one), random requests (questions, chats, model lists, collection and document lists,
uploads, health) against collections whose documents carry secret markers, no response ever
contains a marker or a name of a collection the key may not read, and every collection it may
read is listed. Only the echo of the caller's own words is allowed: ``no collection 'x'`` and
``the model 'wenda/x'`` for the name it sent (worded the same whether ``x`` exists or not).

The collections are built once for the module; each example adds its key to the keys file, which
the server re-reads because it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.config import Settings
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.keys import RIGHTS, add_key
from rag.store.collections import DEFAULT, create_collection
from rag.store.index import Index
from server.app import create_app

CODENAMES = {DEFAULT: "青龙", "kb-alpha": "白虎", "kb-beta": "朱雀", "kb-gamma": "玄武"}
NAMES = list(CODENAMES)
MISSING = "kb-delta"  # never created


def marker(name: str, i: int) -> str:
    return f"MK{name.upper().replace('-', '')}{i}Q"  # only ever in documents, never in a request


def documents(name: str) -> list[Document]:
    code = CODENAMES[name]
    return [Document.from_text(f"{name}-doc{i}", f"{code}项目第{i}号文件（{name}）：项目代号为"
                                                  f"{marker(name, i)}，负责人是{code}组的员工{i}号，"
                                                  f"预算为{i + 3}十万元。") for i in range(3)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("isolation") / "index"
    embedder = FakeEmbedder()
    default = Index.open(root, embedder)
    ingest(default, documents(DEFAULT), tags=["shared"])
    for name in NAMES[1:]:
        ingest(create_collection(root, name, embedder), documents(name), tags=["shared", name])
    keys_file = root.parent / "keys.json"
    add_key(keys_file, "bootstrap", {"*": ["read"]})
    app = create_app(Settings(index_dir=root, generator="extractive", keys_file=keys_file), index=default)
    with TestClient(app) as client:
        yield client, keys_file


collection = st.sampled_from([*NAMES, MISSING])
question = st.sampled_from([f"{c}项目的负责人是谁?" for c in CODENAMES.values()]
                           + ["项目代号是什么?", "预算是多少?"]) | st.text(max_size=30)
where = st.none() | st.fixed_dictionaries({}, optional={
    "doc_ids": st.lists(st.sampled_from([f"{n}-doc{i}" for n in NAMES for i in range(3)]), max_size=3),
    "tags_any": st.lists(st.sampled_from(["shared", *NAMES]), max_size=2),
    "path_prefix": st.sampled_from(["", "kb-", "kb-alpha"])})
action = st.one_of(
    st.tuples(st.just("ask"), collection, question, where),
    st.tuples(st.just("chat"), collection, question, st.booleans()),
    st.tuples(st.just("documents"), collection),
    st.tuples(st.just("upload"), collection),
    st.tuples(st.just("drop"), collection),
    st.sampled_from([("models",), ("collections",), ("health",)]),  # again, after uploads
)
grants = st.dictionaries(st.sampled_from([*NAMES, MISSING, "*"]),
                         st.sets(st.sampled_from(RIGHTS), min_size=1), min_size=1, max_size=3)
who = grants | grants | grants | st.sampled_from(["none", "wrong"])  # mostly keys
counter = iter(range(10**6))


def request(client: TestClient, act: tuple[Any, ...], headers: dict[str, str]) -> Any:
    kind, *args = act
    if kind == "ask":
        name, q, filt = args
        return client.post("/ask", json={"question": q, "collection": name, "filter": filt}, headers=headers)
    if kind == "chat":
        name, q, stream = args
        model = "wenda" if name == DEFAULT else f"wenda/{name}"
        return client.post("/v1/chat/completions", headers=headers, json={
            "model": model, "stream": stream, "messages": [{"role": "user", "content": q}]})
    if kind == "documents":
        return client.get(f"/collections/{args[0]}/documents", headers=headers)
    if kind == "upload":  # the same bytes every time: added once, then skipped
        text = f"{CODENAMES.get(args[0], '')}补充说明：{marker(args[0], 9)}。"
        return client.post(f"/collections/{args[0]}/documents?wait=true", headers=headers,
                           files=[("files", (f"{args[0]}-extra.txt", text.encode(), "text/plain"))])
    if kind == "drop":  # a wrong confirm: refused whoever asks, but only after the access checks
        return client.delete(f"/collections/{args[0]}?confirm=no", headers=headers)
    return client.get({"models": "/v1/models", "collections": "/collections", "health": "/health"}[kind],
                      headers=headers)


def scrubbed(text: str, act: tuple[Any, ...]) -> str:
    """The response without the echoes of the request's own collection name."""
    if len(act) > 1:
        name = act[1]
        text = text.replace(f"no collection '{name}'", "").replace(f"the model 'wenda/{name}'", "")
    return text


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(key=who, actions=st.lists(action, min_size=3, max_size=6))
def test_no_response_shows_a_collection_the_key_cannot_read(served: tuple[TestClient, Path], key: Any,
                                                            actions: list[tuple[Any, ...]]) -> None:
    client, keys_file = served
    if key == "none":
        headers, readable = {}, set()
    elif key == "wrong":
        headers, readable = {"Authorization": "Bearer wk_not-a-key"}, set()
    else:
        secret = add_key(keys_file, f"k{next(counter)}", key)
        headers = {"Authorization": f"Bearer {secret}"}
        readable = {n for n in NAMES if key.get(n) or key.get("*")}
    hidden = [n for n in NAMES if n not in readable]
    secrets = [marker(n, i) for n in hidden for i in (0, 1, 2, 9)] + [n for n in hidden if n != DEFAULT]

    for act in [("collections",), ("models",), ("health",), *actions]:  # the listings every time
        r = request(client, act, headers)
        text = scrubbed(r.text, act)
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{act} → {r.status_code}: {leaked} in {r.text[:300]}"
        assert r.status_code < 500, r.text[:300]
        if key in ("none", "wrong"):
            assert r.status_code == 401 or (act == ("health",) and r.json() == {"status": "ok"}), r.text[:200]
        elif act == ("collections",):
            assert {c["name"] for c in r.json()["collections"]} == readable
        elif act == ("models",):
            assert {m["id"] for m in r.json()["data"]} == {
                "wenda" if n == DEFAULT else f"wenda/{n}" for n in readable}
        elif act[0] in ("ask", "documents") and act[1] not in readable:
            assert r.status_code == 404 and r.json()["error"]["message"] == f"no collection {act[1]!r}"
        elif act[0] == "chat" and act[1] not in readable:
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        elif act[0] == "documents":
            assert {d["doc_id"] for d in r.json()["documents"]} >= {f"{act[1]}-doc{i}" for i in range(3)}
        elif act[0] == "ask" and r.status_code == 200:
            cited = {p["doc_id"].split("-doc")[0].removesuffix("-extra") for p in r.json()["passages"]}
            assert cited <= {act[1]}, json.dumps(r.json(), ensure_ascii=False)[:300]
