"""Load test: ``clients`` concurrent clients for ``seconds`` against a real ``rag serve``.

``serve()`` starts ``rag serve`` on 127.0.0.1 (a free port, its own index directory, built from
seeds/ on first start) and stops it afterwards; ``run_load()`` drives any base URL. Each client
loops until the deadline (requests in flight finish): mostly ``POST /ask`` with the gold
questions, some OpenAI-style chat completions and document listings. Any non-200 or transport
error counts as an error. Latency percentiles are over all requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

__all__ = ["gold_questions", "run_load", "serve"]

ROOT = Path(__file__).resolve().parent.parent


def gold_questions(path: Path = ROOT / "evals" / "gold" / "seeds.jsonl") -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(index_dir: Path, *, env: dict[str, str] | None = None, timeout: float = 600) -> Iterator[str]:
    """``rag serve`` on a free loopback port; yields its base URL once ``/health`` answers."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    full_env.update({"RAG_INDEX_DIR": str(index_dir), "RAG_GENERATOR": "extractive", **(env or {})})
    log = open(index_dir.parent / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port)], cwd=ROOT,
                            env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rag serve exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rag serve did not answer within {timeout} s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


Record = tuple[str, int, float, str]  # kind, status (-1: transport error), ms, detail of a failure


async def _client(http: httpx.AsyncClient, questions: list[str], deadline: float, rng: random.Random,
                  records: list[Record]) -> None:
    while time.monotonic() < deadline:
        roll, question = rng.random(), rng.choice(questions)
        t = time.perf_counter()
        try:
            if roll < 0.8:
                kind, r = "ask", await http.post("/ask", json={"question": question})
            elif roll < 0.95:
                kind, r = "chat", await http.post("/v1/chat/completions", json={
                    "model": "wenda", "messages": [{"role": "user", "content": question}]})
            else:
                kind, r = "documents", await http.get("/documents")
            status, detail = r.status_code, (r.text[:200] if r.status_code != 200 else "")
        except httpx.HTTPError as exc:
            kind, status = "error", -1
            detail = (f"{type(exc).__name__} ({exc.__context__!r}) after {time.perf_counter() - t:.2f} s, "
                      f"{deadline - time.monotonic():.1f} s before the end")
        records.append((kind, status, (time.perf_counter() - t) * 1000, detail))


async def _drive(base: str, clients: int, seconds: float, questions: list[str], seed: int
                 ) -> list[Record]:
    records: list[Record] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as http:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client(http, questions, deadline, random.Random(seed + i), records)
                               for i in range(clients)))
    return records


def run_load(base: str, *, clients: int = 50, seconds: float = 30, questions: list[str] | None = None,
             seed: int = 0) -> dict[str, Any]:
    """Drive ``base`` with ``clients`` concurrent loops for ``seconds``; counts and percentiles."""
    started = time.monotonic()
    records = asyncio.run(_drive(base, clients, seconds, questions or gold_questions(), seed))
    wall = time.monotonic() - started
    ms = np.array([r[2] for r in records])
    errors = [r for r in records if r[1] != 200]
    by_kind: dict[str, int] = {}
    for kind, *_ in records:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    pct = {f"p{p}_ms": round(float(np.percentile(ms, p)), 1) for p in (50, 95, 99)} if len(ms) else {}
    return {"clients": clients, "seconds": seconds, "wall_s": round(wall, 1), "requests": len(records),
            "errors": len(errors), "error_statuses": sorted({r[1] for r in errors}),
            "error_samples": [f"{r[0]} {r[1]}: {r[3]}" for r in errors[:5]],
            "throughput_rps": round(len(records) / wall, 1), "by_kind": by_kind, **pct,
            "max_ms": round(float(ms.max()), 1) if len(ms) else None}
