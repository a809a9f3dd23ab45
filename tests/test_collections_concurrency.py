"""Collections under load, over a real socket: an upload job into one collection never holds up
questions to another (they get the same answers throughout), and dropping a collection waits for
the requests still reading it while new ones already get 404."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from conftest import FakeEmbedder, serving
from test_jobs import BIG, Gate
from test_security import SlowGenerator

from rag.config import Settings
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.store.collections import create_collection
from rag.store.index import Index
from server.app import create_app

HR = {"leave": "人事制度：员工年假为每年十五天，由部门经理审批。", "pay": "人事制度：员工工资每月十日发放。",
      "trial": "人事制度：新员工试用期为三个月，期满考核合格后转正。"}
QUESTIONS = ["员工年假有几天?", "工资什么时候发放?", "新员工的试用期是几个月?"]


def with_hr(index: Index, embedder: FakeEmbedder, name: str = "b") -> None:
    ingest(create_collection(index.directory, name, embedder),
           [Document.from_text(d, t) for d, t in HR.items()])


def answered(http: httpx.Client, question: str, collection: str = "b") -> dict[str, Any]:
    r = http.post("/ask", json={"question": question, "collection": collection})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    body.pop("timings_ms")
    return body


def test_an_upload_into_one_collection_never_holds_up_another(seed_index: Index,
                                                             fake_embedder: FakeEmbedder) -> None:
    with_hr(seed_index, fake_embedder)
    create_collection(seed_index.directory, "a", fake_embedder)
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive", chunk_size=60),
                     index=seed_index)
    gate = Gate(fake_embedder)  # the job's embedding batches wait for the test (questions are not gated)
    failures: list[str] = []
    asked = [0]

    def ask_b(base: str, before: dict[str, dict[str, Any]], rounds: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(rounds):
                for q in QUESTIONS:
                    try:
                        if answered(http, q) != before[q]:
                            failures.append(f"{q}: another answer")
                        asked[0] += 1
                    except (AssertionError, httpx.HTTPError) as exc:
                        failures.append(f"{q}: {exc}")

    def eight(base: str, before: dict[str, dict[str, Any]], rounds: int) -> None:
        threads = [threading.Thread(target=ask_b, args=(base, before, rounds)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "questions to b waited"

    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        try:
            before = {q: answered(http, q) for q in QUESTIONS}
            assert all(not a["refused"] for a in before.values())
            files = [("files", (f"设备{i}.txt", (BIG + str(i)).encode(), "text/plain")) for i in range(4)]
            r = http.post("/collections/a/documents", files=files)
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            assert gate.entered.wait(20)  # the job is mid-ingest, holding a's writer lock
            eight(base, before, rounds=2)  # all answered while the job cannot move
            assert http.get(location).json()["job"]["status"] == "running"
            releaser = threading.Thread(target=lambda: [gate.let() or time.sleep(0.02) for _ in range(500)])
            releaser.start()  # now the job goes on, batch by batch, while b is asked
            eight(base, before, rounds=3)
            releaser.join()
            for _ in range(500):
                job = http.get(location).json()["job"]
                if job["status"] != "running":
                    break
                time.sleep(0.02)
            assert job["status"] == "done"
            assert sorted(job["result"]["added"]) == [f"设备{i}" for i in range(4)]
            assert failures == [] and asked[0] == 8 * 5 * len(QUESTIONS)
            assert {q: answered(http, q) for q in QUESTIONS} == before
            assert len(http.get("/collections/a/documents").json()["documents"]) == 4
        finally:
            gate.let(1000)


def test_a_drop_waits_for_the_requests_reading_the_collection(seed_index: Index,
                                                              fake_embedder: FakeEmbedder) -> None:
    with_hr(seed_index, fake_embedder, "hr")
    slow = SlowGenerator(pieces=40, delay=0.05)  # a two-second answer stream
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive"), index=seed_index,
                     generator=slow)
    body = {"model": "wenda/hr", "stream": True, "messages": [{"role": "user", "content": QUESTIONS[0]}]}
    dropped: list[httpx.Response] = []
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            lines = r.iter_lines()
            while "字" not in next(lines):  # the stream has started: this request reads hr
                pass
            drop = threading.Thread(target=lambda: dropped.append(
                httpx.delete(f"{base}/collections/hr?confirm=hr", timeout=30)))
            drop.start()
            time.sleep(0.3)
            assert not dropped, "the drop did not wait for the stream"
            late = http.post("/ask", json={"question": QUESTIONS[0], "collection": "hr"})
            assert late.status_code == 404 and late.json()["error"]["message"] == "no collection 'hr'"
            assert [c["name"] for c in http.get("/collections").json()["collections"]] == ["default"]
            rest = "\n".join(lines)
        drop.join(timeout=30)
        assert rest.rstrip().endswith("data: [DONE]") and '"error"' not in rest
        assert '"doc_id": "leave"' in rest  # the answer still quoted the dropped collection's text
        assert dropped and dropped[0].status_code == 200 and dropped[0].json() == {"dropped": "hr"}
        assert not (seed_index.directory / "collections" / "hr").exists()
        assert http.post("/ask", json={"question": QUESTIONS[0], "collection": "hr"}).status_code == 404
