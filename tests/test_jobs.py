"""Uploads as ingest jobs (``POST /documents`` → 202, ``GET``/``DELETE /jobs/{id}``), ``rag.ingest.jobs``, and
what an upload stores: long names shortened, the file stored before the index lists it.

The fake embedder is gated where timing matters: a job's embedding waits until the test lets a
batch through, so "while it runs" is a state the test holds, not a race it hopes to win.
"""

from __future__ import annotations

import errno
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import FakeEmbedder, serving
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.errors import IngestCancelled, InputError, NotFoundError
from rag.ingest.jobs import Job, JobRunner
from rag.store.index import Index
from server.app import create_app

MakeClient = Callable[..., TestClient]
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
BIG = "".join(f"第{i}条：编号{i}的设备位于第{i % 7}号厂房，负责人是员工{i}号。" for i in range(60))
SMALL = "福建海峡实验室位于福州市仓山区，主要研究海洋信息技术。"


class Gate:
    """Wraps ``embed_passages``: each call waits for a pass (``let(n)``) and counts itself."""

    def __init__(self, embedder: FakeEmbedder) -> None:
        self.real, self.passes, self.calls = embedder.embed_passages, threading.Semaphore(0), 0
        self.entered = threading.Event()
        embedder.embed_passages = self.embed  # type: ignore[method-assign]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        if not self.passes.acquire(timeout=20):  # never hang the suite: fail the job instead
            raise RuntimeError("the test never let this batch through")
        return self.real(texts)

    def let(self, n: int = 1) -> None:
        for _ in range(n):
            self.passes.release()


def post(client: TestClient, name: str, text: str, query: str = "") -> Any:
    return client.post("/documents" + query, files=[("files", (name, text.encode(), "text/plain"))])


def poll(client: Any, job_id: str, until: Callable[[dict[str, Any]], bool],
         timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()["job"]
        if until(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("done", "failed", "cancelled")


def index_state(client: TestClient, index: Index) -> tuple[list[str], int, list[str]]:
    folder = index.directory / "uploads"
    stored = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return sorted(d["doc_id"] for d in client.get("/documents").json()["documents"]), \
        index.current_generation(), stored


# ---- the HTTP contract -----------------------------------------------------------------------
def test_upload_is_a_job_whose_result_is_the_old_report(make_client: MakeClient) -> None:
    client = make_client()
    r = post(client, "海峡.txt", SMALL)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert r.headers["location"] == f"/jobs/{job['id']}"
    assert job["status"] in ("queued", "running", "done") and job["documents"] == ["海峡"]
    done = poll(client, job["id"], finished)
    assert done["status"] == "done" and done["error"] is None
    result = done["result"]
    assert result["documents"] == ["海峡"] and result["added"] == ["海峡"]
    assert {k: result[k] for k in ("updated", "skipped", "removed", "failed", "notes")} == {
        "updated": [], "skipped": [], "removed": [], "failed": [], "notes": []}
    assert result["chunks_embedded"] >= 1 and done["progress"]["chunks_done"] == result["chunks_embedded"]
    # ?wait=true: 200 with the report itself, as POST /documents answered before jobs
    waited = post(client, "湿地.txt", "闽江口湿地公园位于长乐区。", "?wait=true")
    assert waited.status_code == 200 and set(waited.json()) == set(result)
    assert waited.json()["added"] == ["湿地"]
    assert post(client, "湿地.txt", "闽江口湿地公园位于长乐区。", "?wait=true").json()["skipped"] == ["湿地"]
    assert client.post("/ask", json={"question": "福建海峡实验室位于哪里?"}).json()["citations"][0][
        "doc_id"] == "海峡"


def test_jobs_need_the_api_key_and_unknown_jobs_are_404(make_client: MakeClient) -> None:
    client = make_client(api_key="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    r = client.post("/documents", files=[("files", ("k.txt", SMALL.encode(), "text/plain"))], headers=auth)
    job_id = r.json()["job"]["id"]
    assert client.get(f"/jobs/{job_id}").status_code == 401  # it names the uploaded documents
    assert client.delete(f"/jobs/{job_id}").status_code == 401
    assert client.get(f"/jobs/{job_id}", headers=auth).status_code == 200
    r = client.get("/jobs/nope", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_progress_is_visible_while_the_job_runs(make_client: MakeClient, fake_embedder: FakeEmbedder) -> None:
    gate = Gate(fake_embedder)
    client = make_client(chunk_size=60)
    job_id = post(client, "设备.txt", BIG).json()["job"]["id"]
    job = poll(client, job_id, lambda j: j["progress"]["chunks_total"] > 0)
    total = job["progress"]["chunks_total"]
    assert job["status"] == "running" and total > 32 and job["progress"]["chunks_done"] == 0
    gate.let()
    job = poll(client, job_id, lambda j: j["progress"]["chunks_done"] > 0)
    assert job["status"] == "running" and job["progress"] == {"chunks_done": 16, "chunks_total": total}
    gate.let(100)
    job = poll(client, job_id, finished)
    assert job["status"] == "done" and job["progress"] == {"chunks_done": total, "chunks_total": total}


def test_cancel_leaves_the_index_as_it_was(make_client: MakeClient, seed_index: Index,
                                           fake_embedder: FakeEmbedder) -> None:
    gate = Gate(fake_embedder)
    client = make_client(chunk_size=60)
    before = index_state(client, seed_index)
    job_id = post(client, "设备.txt", BIG).json()["job"]["id"]
    assert gate.entered.wait(20)
    gate.let()  # one batch done: the job is well under way
    poll(client, job_id, lambda j: j["progress"]["chunks_done"] > 0)
    r = client.delete(f"/jobs/{job_id}")
    assert r.status_code == 202 and r.json()["job"]["cancel_requested"] is True
    gate.let(100)
    job = poll(client, job_id, finished)
    assert job["status"] == "cancelled" and job["error"]["code"] == "cancelled" and job["result"] is None
    assert gate.calls == 2  # stopped at the next batch
    assert index_state(client, seed_index) == before  # no document, no new generation, no file
    assert client.delete(f"/jobs/{job_id}").status_code == 200  # cancelling a finished job: as it is


def test_a_job_over_max_job_chunks_fails_clearly_and_changes_nothing(
        make_client: MakeClient, seed_index: Index, fake_embedder: FakeEmbedder) -> None:
    client = make_client(chunk_size=60, max_job_chunks=20)
    before, embedded = index_state(client, seed_index), fake_embedder.passages_embedded
    job = poll(client, post(client, "设备.txt", BIG).json()["job"]["id"], finished)
    assert job["status"] == "failed" and job["error"]["code"] == "document_too_large"
    assert "RAG_MAX_JOB_CHUNKS" in job["error"]["message"] and "设备" in job["error"]["message"]
    r = post(client, "设备.txt", BIG, "?wait=true")
    assert r.status_code == 413 and r.json()["error"]["code"] == "document_too_large"
    assert fake_embedder.passages_embedded == embedded  # refused before any embedding
    assert index_state(client, seed_index) == before


def test_questions_are_answered_while_a_job_runs(make_client: MakeClient,
                                                 fake_embedder: FakeEmbedder) -> None:
    gate = Gate(fake_embedder)
    client = make_client(chunk_size=60)
    job_id = post(client, "设备.txt", BIG).json()["job"]["id"]
    assert gate.entered.wait(20)  # the job holds the writer lock, blocked in its embedder
    answers: list[int] = []
    asker = threading.Thread(target=lambda: answers.append(
        client.post("/ask", json={"question": QUESTION}).status_code))
    asker.start()
    asker.join(timeout=20)  # the job cannot go on until the ask returned: it waits for the gate
    assert answers == [200]
    assert client.get("/documents").status_code == 200 and client.get("/health").status_code == 200
    gate.let(100)
    assert poll(client, job_id, finished)["status"] == "done"


def test_a_queued_job_whose_client_left_is_not_started(make_client: MakeClient, seed_index: Index,
                                                      fake_embedder: FakeEmbedder) -> None:
    client = make_client(chunk_size=60)
    now = [0.0]
    default = client.app.state.wenda.collection("default")
    runner = JobRunner(default.write_lock, abandon_after=60, clock=lambda: now[0])
    default.jobs = runner  # the default collection's runner, on a clock the test moves
    gate = Gate(fake_embedder)
    first = post(client, "设备.txt", BIG).json()["job"]["id"]
    assert gate.entered.wait(20)  # the first upload runs (picked at time 0)
    left = post(client, "海峡.txt", SMALL).json()["job"]
    kept = post(client, "湿地.txt", "闽江口湿地公园位于长乐区。").json()["job"]["id"]
    assert left["status"] == "queued"
    job = runner.get(left["id"])
    now[0] = 61.0  # nobody asked about the second upload for 61 s; the third one is polled
    client.get(f"/jobs/{kept}")
    gate.let(100)
    assert job.finished.wait(20)
    assert job.status == "cancelled" and "client left" in str(job.error) and job.started_at is None
    assert poll(client, first, finished)["status"] == "done"
    assert poll(client, kept, finished)["status"] == "done"
    docs = {d["doc_id"] for d in client.get("/documents").json()["documents"]}
    assert {"设备", "湿地"} <= docs and "海峡" not in docs


def test_a_waiting_client_that_hangs_up_drops_its_queued_job(seed_index: Index,
                                                             fake_embedder: FakeEmbedder) -> None:
    """``?wait=true`` over a real connection: the client gives up while its job is queued."""
    app = create_app(Settings(index_dir=seed_index.directory, generator="extractive", chunk_size=60),
                     index=seed_index)
    gate = Gate(fake_embedder)
    with serving(app) as base, httpx.Client(base_url=base, timeout=20) as http:
        try:
            first = http.post("/documents", files=[("files", ("设备.txt", BIG.encode(), "text/plain"))])
            assert gate.entered.wait(20)
            with pytest.raises(httpx.ReadTimeout):  # the client gives up waiting
                http.post("/documents?wait=true", timeout=1,
                          files=[("files", ("海峡.txt", SMALL.encode(), "text/plain"))])
            runner: JobRunner = app.state.wenda.collection("default").jobs
            (left,) = [j for j in runner.jobs() if j.documents == ["海峡"]]
            assert left.finished.wait(20)  # the server saw the hang-up: dropped while still queued
            assert left.status == "cancelled" and left.started_at is None
            gate.let(100)
            assert poll(http, first.json()["job"]["id"], finished)["status"] == "done"
            assert "海峡" not in {d["doc_id"] for d in http.get("/documents").json()["documents"]}
        finally:
            gate.let(100)  # before the server stops: the job thread waits on the gate


def test_a_full_queue_is_503(make_client: MakeClient, fake_embedder: FakeEmbedder) -> None:
    client = make_client(chunk_size=60, max_queued_jobs=1)
    gate = Gate(fake_embedder)
    running = post(client, "设备.txt", BIG).json()["job"]["id"]
    assert gate.entered.wait(20)
    queued = post(client, "海峡.txt", SMALL).json()["job"]["id"]
    r = post(client, "湿地.txt", "闽江口湿地公园位于长乐区。")
    assert r.status_code == 503 and r.json()["error"]["code"] == "busy" and r.headers["retry-after"]
    gate.let(100)
    assert [poll(client, j, finished)["status"] for j in (running, queued)] == ["done", "done"]


def test_settings_bound_the_runner(make_client: MakeClient) -> None:
    client = make_client(job_abandon_s=5, max_queued_jobs=3)
    post(client, "海峡.txt", SMALL)
    runner = client.app.state.wenda.collection("default").jobs
    assert (runner.abandon_after, runner.max_queued) == (5, 3)


# ---- what an upload stores (issue 16, item 3) ------------------------------------------------
def test_a_long_chinese_file_name_is_shortened_and_stored(make_client: MakeClient, seed_index: Index) -> None:
    client = make_client()
    long_name, other = "秦创原" * 34 + ".md", "秦创原" * 34 + "二.md"  # 306 and 309 bytes
    r = post(client, long_name, "# 秦创原\n\n" + SMALL, "?wait=true")
    assert r.status_code == 200, r.text
    (doc_id,) = r.json()["documents"]
    assert doc_id.startswith("秦创原" * 10) and len(doc_id.encode()) <= 150 and doc_id[-9] == "-"
    assert (seed_index.directory / "uploads" / f"{doc_id}.md").read_text().endswith(SMALL)
    (listed,) = [d for d in client.get("/documents").json()["documents"] if d["doc_id"] == doc_id]
    # shown relative to the index (no server paths), and the file is there
    assert listed["path"] == f"uploads/{doc_id}.md" and listed["source"] == long_name
    assert (seed_index.directory / listed["path"]).is_file()
    second = post(client, other, "另一份。", "?wait=true").json()["documents"][0]
    assert second != doc_id and second[:-9] == doc_id[:-9]  # same start, told apart by the hash


def test_a_file_that_cannot_be_stored_leaves_the_index_unchanged(
        make_client: MakeClient, seed_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client()
    before = index_state(client, seed_index)
    real = tempfile.mkstemp

    def full_disk(*args: Any, dir: Any = None, **kwargs: Any) -> Any:
        if dir is not None and Path(dir).name == "uploads":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    r = post(client, "海峡.txt", SMALL, "?wait=true")
    assert index_state(client, seed_index) == before  # not listed without its file
    assert r.status_code == 500 and "No space left" in r.json()["error"]["message"]
    job = poll(client, post(client, "海峡.txt", SMALL).json()["job"]["id"], finished)
    assert job["status"] == "failed" and "the index is unchanged" in job["error"]["message"]
    assert index_state(client, seed_index) == before
    monkeypatch.undo()
    assert poll(client, post(client, "海峡.txt", SMALL).json()["job"]["id"], finished)["status"] == "done"


# ---- rag.ingest.jobs on its own ---------------------------------------------------------------------
def test_runner_cancels_queued_jobs_and_survives_failures() -> None:
    lock, hold = threading.Lock(), threading.Event()
    runner = JobRunner(lock, keep=2)

    def boom(job: Job) -> dict[str, Any]:
        raise ValueError("unexpected")

    def refuse(job: Job) -> dict[str, Any]:
        raise InputError("bad")

    first = runner.submit(lambda job: {"held": hold.wait(10)})
    queued = runner.submit(lambda job: {"never": True})
    assert runner.cancel(queued.id).status == "cancelled" and queued.finished.is_set()
    failing = [runner.submit(boom), runner.submit(refuse)]
    last = runner.submit(lambda job: {"ok": True})
    hold.set()
    assert all(job.finished.wait(10) for job in (first, *failing, last))
    assert first.result == {"held": True} and queued.result is None
    assert failing[0].status == "failed" and "see the server log" in str(failing[0].error)
    assert failing[1].status == "failed" and failing[1].to_dict()["error"] == {
        "code": "invalid_input", "message": "bad"}
    assert last.status == "done" and last.result == {"ok": True}
    with pytest.raises(NotFoundError, match="no job"):  # only the last `keep` finished jobs are kept
        runner.get(first.id)
    assert runner.get(last.id) is last


def test_runner_stops_a_running_job_that_checks() -> None:
    started = threading.Event()

    def work(job: Job) -> dict[str, Any]:
        started.set()
        while not job.cancelled():
            time.sleep(0.01)
        raise IngestCancelled("stopped")

    runner = JobRunner(threading.Lock())
    job = runner.submit(work)
    assert started.wait(10)
    assert runner.cancel(job.id).status == "running"
    assert job.finished.wait(10) and job.status == "cancelled"
