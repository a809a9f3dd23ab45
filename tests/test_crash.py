"""Crash safety of ``rag ingest``, run for real in subprocesses with the USE embedder (fast ONNX).

Each run grows (and sometimes edits or shrinks) a generated Chinese corpus and is SIGKILLed: at a
random moment, or the instant SQLite's rollback journal appears (mid-commit), or the instant a
FAISS temp file appears (mid cache write). After every kill the index must open, pass
``rag.store.doctor.check``, hold exactly the state before the run or the whole new corpus (one
transaction: never part of it), and answer a question with verified quotes.

The same loop runs on PostgreSQL (``RAG_BACKEND=postgres``): killed at a random moment, or the
instant the commit's transaction is in flight (seen in ``pg_stat_activity``). There the checks are
``rag.store.postgres.doctor.check``, the generation (the old one still served after a rollback,
exactly one more after a commit) and the killed writer's advisory lock (released by the server).

The default SQLite version (>= 20 runs) takes about a minute here, the PostgreSQL one (16 runs)
about as long; ``RAG_STRESS=1 pytest -m stress`` runs a longer one.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rag.models.embed import Embedder, load_embedder
from rag.qa import ask
from rag.store.backend import SearchBackend
from rag.store.collections import Location
from rag.store.doctor import check, diagnose
from rag.store.index import Index

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
CITIES = ["福州", "西安", "成都", "杭州", "昆明", "兰州", "南宁", "贵阳", "太原", "合肥", "拉萨", "银川"]
FILLER = [
    "该站长期开展气象与水文的联合观测，数据每月汇总上报一次。",
    "站内设有自动雨量计、风速仪和土壤湿度传感器，全天候运行。",
    "第{a}季度的平均降水量为{b}毫米，较上年同期有所增加。",
    "观测人员每天记录{a}次气温，并在{b}点整校准仪器。",
    "周边的山地植被以针叶林为主，海拔约{b}米。",
    "当地学校每年组织学生来站参观，累计接待约{b}人次。",
    "设备维护由{a}名技术员轮流负责，备用电源可支撑{b}小时。",
]
Corpus = dict[str, str]  # doc_id -> text


def make_doc(i: int, rng: random.Random, sentences: int) -> str:
    lines = [f"编号为{i:04d}的观测站位于{CITIES[i % len(CITIES)]}市，始建于{1950 + i % 70}年。"]
    for _ in range(sentences):
        lines.append(rng.choice(FILLER).format(a=rng.randint(1, 9), b=rng.randint(10, 9999)))
    return "\n".join(lines) + "\n"


def write_corpus(folder: Path, corpus: Corpus) -> None:
    for f in folder.iterdir():
        if f.stem not in corpus:
            f.unlink()
    for doc_id, text in corpus.items():
        path = folder / f"{doc_id}.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def fingerprint(corpus: Corpus) -> dict[str, str]:
    return {d: hashlib.sha256(t.encode("utf-8")).hexdigest() for d, t in corpus.items()}


def stored(index_dir: Path) -> dict[str, str]:
    with sqlite3.connect(index_dir / "docstore.sqlite") as db:
        return dict(db.execute("SELECT doc_id, sha256 FROM documents"))


def documents(index: SearchBackend) -> dict[str, str]:
    """What an index holds (doc_id -> sha256 of the text), on either backend."""
    return {d.doc_id: d.sha256 for d in index.documents()}


def rag_ingest(index_dir: Path, *paths: Path, prune: bool = False,
               settings: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``rag ingest`` in a subprocess; ``settings``: more RAG_* variables (the backend)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_INDEX_DIR=str(index_dir), RAG_EMBEDDER="use", PYTHONIOENCODING="utf-8", COLUMNS="200",
               **(settings or {}))
    args = [sys.executable, "-m", "rag", "ingest", *map(str, paths), *(["--prune"] if prune else [])]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, encoding="utf-8")


def kill_when(proc: subprocess.Popen[str], seen: Callable[[], bool], timeout: float = 120,
              delay: float = 0.0) -> bool:
    """SIGKILL ``proc`` as soon as ``seen()`` (``delay`` seconds later); False when it finished first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if seen():
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.0005)
    if proc.poll() is None:
        proc.kill()
        raise AssertionError("rag ingest hung")
    return False


def kill_after(proc: subprocess.Popen[str], delay: float) -> bool:
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def kill_randomly(proc: subprocess.Popen[str], rng: random.Random, full_run: float) -> bool:
    return kill_after(proc, rng.uniform(0.2, full_run * 0.8))


@pytest.fixture(scope="module")
def use_embedder() -> Embedder:
    return load_embedder("use")


def assert_answers(index: SearchBackend, rng: random.Random) -> None:
    """The seed question is answered; a question about a generated document gets an Answer
    whose quotes are exact. (Generated documents share one template, so which one a question
    retrieves is not asserted: that is retrieval quality, not crash safety.)"""
    seeded = ask(index, QUESTION, top_k=3)
    assert not seeded.refused and "量子" in seeded.answer, seeded.answer
    i = rng.choice(sorted(int(c.doc_id[4:]) for c in index.chunks.values() if c.doc_id.startswith("doc_")))
    for answer in (seeded, ask(index, f"编号{i:04d}的观测站位于哪里?", top_k=3)):
        for c in answer.citations:
            assert index.text(c.doc_id)[c.start:c.end] == c.quote


Kill = Callable[[subprocess.Popen[str], random.Random, float], bool]  # (ingest, rng, full run s)


@dataclass
class Target:
    """Where the crash runs' ``rag ingest`` writes, and what is checked there after each run."""

    index_dir: Path
    location: Location
    open: Callable[[], SearchBackend]  # a new index on what is stored now
    kills: dict[str, Kill]  # the kill modes, taken in turn
    verify: Callable[[SearchBackend, bool, str], None]  # (index, rolled back, run label)
    settings: dict[str, str] | None = None  # RAG_* of the ingests beyond the index folder


def sqlite_target(index_dir: Path, embedder: Embedder) -> Target:
    def temp_file() -> bool:
        return any(p.name.startswith(".vectors.faiss.") for p in os.scandir(index_dir))

    def verify(index: SearchBackend, rolled_back: bool, label: str) -> None:
        assert isinstance(index, Index) and check(index) == [], label
        assert not [p for p in os.listdir(index_dir) if p.startswith(".")], "temp files left behind"

    journal = index_dir / "docstore.sqlite-journal"
    return Target(index_dir, Location(index_dir), lambda: Index.open(index_dir, embedder), {
        "random": kill_randomly,
        "journal": lambda proc, rng, full_run: kill_when(proc, journal.exists),
        "faiss-temp": lambda proc, rng, full_run: kill_when(proc, temp_file),
    }, verify)


def crash_runs(tmp_path: Path, target: Target, runs: int, docs_per_run: int, sentences: int,
               seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    folder = tmp_path / "corpus"
    folder.mkdir()
    corpus: Corpus = {p.stem: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")}
    corpus.update({f"doc_{i:04d}": make_doc(i, rng, sentences) for i in range(docs_per_run)})
    write_corpus(folder, corpus)
    started = time.monotonic()
    first = rag_ingest(target.index_dir, folder, prune=True, settings=target.settings)
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    full_run = time.monotonic() - started
    committed = fingerprint(corpus)
    index = target.open()
    assert documents(index) == committed
    target.verify(index, False, "the first ingest")
    modes = list(target.kills)
    outcomes = dict.fromkeys([*modes, "finished", "rolled back", "killed after commit"], 0)
    next_id = docs_per_run
    for run in range(runs):
        for _ in range(docs_per_run):  # grow; now and then edit or remove a document
            corpus[f"doc_{next_id:04d}"] = make_doc(next_id, rng, sentences)
            next_id += 1
        generated = sorted(d for d in corpus if d.startswith("doc_"))
        if run % 4 == 1:
            victim = rng.choice(generated)
            corpus[victim] = corpus[victim] + "附记：本站数据已归档。\n"
        if run % 5 == 2:
            del corpus[rng.choice(generated)]
        write_corpus(folder, corpus)
        wanted = fingerprint(corpus)
        proc = rag_ingest(target.index_dir, folder, prune=True, settings=target.settings)
        mode = modes[run % len(modes)]
        killed = target.kills[mode](proc, rng, full_run)
        if not killed:
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        outcomes[mode if killed else "finished"] += 1

        index = target.open()  # loads (rebuilding a stale FAISS cache)
        now = documents(index)
        assert now in (committed, wanted), f"run {run}: a partial ingest is visible"
        target.verify(index, now != wanted, f"run {run} ({mode}, killed={killed})")
        if now != wanted:
            outcomes["rolled back"] += 1
        elif killed:
            outcomes["killed after commit"] += 1
        committed = now
        assert_answers(index, rng)
    finish = rag_ingest(target.index_dir, folder, prune=True, settings=target.settings)
    assert finish.wait(timeout=300) == 0
    assert documents(target.open()) == fingerprint(corpus)
    assert diagnose(target.location).ok
    return outcomes


@pytest.mark.integration
def test_sigkill_during_ingest_never_damages_the_index(tmp_path: Path, use_embedder: Embedder) -> None:
    target = sqlite_target(tmp_path / "index", use_embedder)
    outcomes = crash_runs(tmp_path, target, runs=21, docs_per_run=6, sentences=14, seed=6)
    killed = outcomes["random"] + outcomes["journal"] + outcomes["faiss-temp"]
    assert killed >= 15, outcomes  # most runs really were interrupted
    assert outcomes["journal"] >= 3 and outcomes["faiss-temp"] >= 3, outcomes
    assert outcomes["rolled back"] >= 3 and outcomes["killed after commit"] >= 3, outcomes


@pytest.mark.stress
@pytest.mark.skipif(not os.environ.get("RAG_STRESS"), reason="set RAG_STRESS=1 (make stress)")
def test_sigkill_stress(tmp_path: Path, use_embedder: Embedder) -> None:
    target = sqlite_target(tmp_path / "index", use_embedder)
    outcomes = crash_runs(tmp_path, target, runs=90, docs_per_run=20, sentences=30, seed=66)
    assert outcomes["journal"] >= 10 and outcomes["faiss-temp"] >= 10, outcomes


# ---- PostgreSQL ------------------------------------------------------------------------------
# A backend of the ingest's inside its commit: a transaction that has written (or locked the
# collection row FOR UPDATE, its first statement). Schema creation also writes, at first open only.
IN_COMMIT = ("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
             " AND backend_xid IS NOT NULL AND position('CREATE SCHEMA' in query) = 0")
# Where in the commit to kill, in turn: its first write, a little later, its COMMIT statement (or,
# if polling missed that moment, the instant the new generation is visible).
KILL_POINTS = ((IN_COMMIT, 0.0), (IN_COMMIT, 0.015),
               (f"{IN_COMMIT} AND query = 'COMMIT' UNION ALL SELECT 1 FROM wenda.collections"
                " WHERE name = 'default' AND generation > %(g)s", 0.0))


def writer_lock_wait(index: Any, timeout: float = 10.0) -> float:
    """Seconds until the collection's writer lock can be taken: a killed writer's session lock is
    dropped by the server once it sees the connection gone (an ingest would wait for it)."""
    from rag.store.postgres.schema import LOCK_SPACE

    started = time.monotonic()
    key = (LOCK_SPACE, index.collection)
    with index.pool.connection() as conn:
        while not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", key).fetchone()[0]:
            assert time.monotonic() - started < timeout, "the killed writer's lock is still held"
            time.sleep(0.02)
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", key)
    return time.monotonic() - started


def postgres_target(index_dir: Path, url: str, embedder: Embedder) -> Target:
    """The default collection of ``url``; ``serving`` is a serving process's view of it, opened
    before any ingest and refreshed only after a commit."""
    import psycopg

    from rag.store.postgres import PostgresIndex
    from rag.store.postgres.doctor import check as pg_check

    serving = PostgresIndex.open(url, "default", embedder, index_dir)  # the schema, made here
    points = itertools.cycle(KILL_POINTS)

    def in_commit(proc: subprocess.Popen[str], rng: random.Random, full_run: float) -> bool:
        query, delay = next(points)
        before = {"g": serving.generation}
        with psycopg.connect(url, autocommit=True) as conn:
            return kill_when(proc, lambda: conn.execute(query, before).fetchone() is not None, delay=delay)

    def verify(index: SearchBackend, rolled_back: bool, label: str) -> None:
        assert isinstance(index, PostgresIndex) and pg_check(index) == [], label
        writer_lock_wait(index)
        if rolled_back:  # nothing of the transaction is left, and the old generation still serves
            assert index.generation == serving.generation and not serving.refresh(), label
            assert_answers(serving, random.Random(index.generation))
        else:
            assert index.generation == serving.generation + 1 and serving.refresh(), label

    return Target(index_dir, Location(index_dir, url),
                  lambda: PostgresIndex.open(url, "default", embedder, index_dir),
                  {"random": kill_randomly, "in commit": in_commit}, verify,
                  {"RAG_BACKEND": "postgres", "RAG_DATABASE_URL": url})


@pytest.mark.integration
def test_sigkill_during_postgres_ingest_never_damages_the_collection(
        tmp_path: Path, pg_db: str, use_embedder: Embedder) -> None:
    target = postgres_target(tmp_path / "index", pg_db, use_embedder)
    outcomes = crash_runs(tmp_path, target, runs=14, docs_per_run=6, sentences=14, seed=15)
    assert outcomes["random"] >= 5 and outcomes["in commit"] >= 4, outcomes  # most runs were interrupted
    assert outcomes["rolled back"] >= 5 and outcomes["killed after commit"] >= 1, outcomes


@pytest.mark.integration
def test_concurrent_cli_ingests_are_serialized(tmp_path: Path, use_embedder: Embedder) -> None:
    """Three ``rag ingest`` processes at once on overlapping folders: the lock makes them take
    turns, so every chunk is embedded exactly once and the union lands intact."""
    rng = random.Random(7)
    folders = [tmp_path / f"part{k}" for k in range(3)]
    corpus: Corpus = {}
    for k, folder in enumerate(folders):
        folder.mkdir()
        part = {f"doc_{k}{i:03d}": make_doc(k * 100 + i, rng, 12) for i in range(8)}
        if k == 0:
            part.update({p.stem: p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")})
        write_corpus(folder, part)
        corpus.update(part)
    index_dir = tmp_path / "index"
    jobs = [rag_ingest(index_dir, folders[0], folders[1]), rag_ingest(index_dir, folders[1], folders[2]),
            rag_ingest(index_dir, folders[2], folders[0])]
    outputs = [job.communicate(timeout=300) for job in jobs]
    for job, (_, err) in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, err
    assert stored(index_dir) == fingerprint(corpus)
    index = Index.open(index_dir, use_embedder)
    assert check(index) == []
    embedded = [int(re.search(r"(\d+) embedded", out).group(1)) for out, _ in outputs]  # type: ignore[union-attr]
    assert sum(embedded) == len(index), embedded  # nobody embedded what another had stored
    assert sorted(embedded)[0] == 0  # the last one found everything done
    assert_answers(index, rng)
