"""The public-benchmark runner behind ``rag bench squad``: any SQuAD-layout file, open-domain.

Every paragraph becomes a document (doc_id = paragraph id) in its own index directory
(incremental: a re-run embeds nothing), then every question goes through ``rag.qa.ask`` against
the whole collection. ``--limit N`` takes the first N questions but still ingests ALL paragraphs.

Paragraph ranking. ``ask`` returns only ``top_k`` chunks (what the answer was built from), and a
paragraph spans several chunks, so hit@10 needs a deeper list. The ranking of a record is
``Answer.passages`` (deduplicated to paragraphs), extended by ``rag.retrieve.retrieve`` at depth
``DEPTH`` with the same normalized query. ``retrieve`` ranks independently of ``k``, so its head
equals the passages; ``ranking_mismatches`` counts the questions where it did not (expected 0).
The same query object also gives the baselines, in the same run over the same normalization:
``bm25`` — bm25s over jieba tokens of whole paragraphs (``rag.lexical``, the classic baseline);
``bm25_chunks`` / ``dense_only`` — the index's own lexical / dense leg alone (same chunks).
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evals import metrics as m
from rag.documents import Document
from rag.embed import Embedder, load_embedder
from rag.errors import InputError
from rag.generate import Generator
from rag.index import Index
from rag.ingest import ingest
from rag.lexical import Lexicon, tokenize
from rag.normalize import normalize, to_simplified
from rag.qa import ask
from rag.retrieve import Hit, make_query, retrieve

__all__ = ["DEPTH", "format_summary", "load_squad", "paragraph_ranking", "run_squad"]

DEPTH = 50  # chunks retrieved for the paragraph ranking (10 paragraphs need ~30 chunks)
KS = (1, 5, 10)


def load_squad(file: Path) -> tuple[list[Document], list[dict[str, Any]]]:
    """Paragraphs as ``Document``s and questions as ``{"qid", "question", "gold_paragraph",
    "answers"}``, in file order. Raises ``InputError`` on a paragraph id used twice."""
    data = json.loads(Path(file).read_text(encoding="utf-8"))
    docs: dict[str, Document] = {}
    questions = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            pid = str(para["id"])
            if pid in docs:
                raise InputError(f"{file}: paragraph id {pid!r} appears twice")
            docs[pid] = Document.from_text(pid, para["context"], path=f"{Path(file).name}#{pid}")
            questions += [{"qid": str(qa["id"]), "question": qa["question"], "gold_paragraph": pid,
                           "answers": [a["text"] for a in qa.get("answers", [])]}
                          for qa in para["qas"]]
    return list(docs.values()), questions


def paragraph_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Doc ids deduplicated, first occurrence kept (chunk ranking → paragraph ranking).

    >>> paragraph_ranking(["p2", "p2", "p1", "p2", "p3"])
    ['p2', 'p1', 'p3']
    """
    return list(dict.fromkeys(doc_ids))


def _docs(hits: Sequence[Hit]) -> list[str]:
    return [h.chunk.doc_id for h in hits]


def _ranking_scores(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> dict[str, Any]:
    rel = [[d == g for d in r[: max(KS)]] for r, g in zip(rankings, golds, strict=True)]
    out: dict[str, Any] = {f"hit@{k}": m.mean(m.hit_at(x, k) for x in rel) for k in KS}
    out[f"mrr@{max(KS)}"] = m.mean(m.reciprocal_rank(x) for x in rel)
    return out


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="q" if desc == "ask" else "chunk",
                disable=not enabled, dynamic_ncols=True)


def _ingest(index: Index, docs: list[Document], progress: bool) -> dict[str, Any]:
    bar = _progress(len(docs), "embed", progress)

    def tick(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = ingest(index, docs, prune=True, progress=tick)
    bar.close()
    return {"ingest_seconds": round(report.seconds, 2), "chunks_embedded": report.chunks_embedded,
            "chunks_reused": report.chunks_reused, "documents_added": len(report.added),
            "documents_skipped": len(report.skipped), "chunks": len(index)}


def run_squad(file: Path, *, out_json: Path, index_dir: Path, limit: int | None = None,
              embedder: str | Embedder = "e5", top_k: int = 5, generator: Generator | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Run a SQuAD-layout file open-domain; write ``{"summary", "records"}`` to ``out_json`` and
    return the summary (see the module docstring for the ranking and the baselines)."""
    started = time.perf_counter()
    docs, questions = load_squad(file)
    if limit is not None:
        questions = questions[: max(limit, 0)]
    index = Index.open(index_dir, load_embedder(embedder) if isinstance(embedder, str) else embedder)
    ingest_stats = _ingest(index, docs, progress)
    order = [d.doc_id for d in docs]
    lexicon = Lexicon([tokenize(normalize(d.text).text) for d in docs])

    records: list[dict[str, Any]] = []
    rankings: dict[str, list[list[str]]] = {"bm25": [], "bm25_chunks": [], "dense_only": []}
    ask_ms: list[float] = []
    mismatches = 0
    bar = _progress(len(questions), "ask", progress)
    for q in questions:
        t0 = time.perf_counter()
        answer = ask(index, q["question"], top_k=top_k, generator=generator)
        ask_ms.append((time.perf_counter() - t0) * 1000)
        query = make_query(index, to_simplified(" ".join(q["question"].split())))
        deep = retrieve(index, query, DEPTH)
        head = [p.chunk_id for p in answer.passages]
        mismatches += head != [h.chunk.chunk_id for h in deep[: len(head)]]
        ranking = paragraph_ranking([p.doc_id for p in answer.passages] + _docs(deep))
        rankings["bm25"].append([order[row] for row, _ in lexicon.search(query.tokens, max(KS))])
        rankings["bm25_chunks"].append(
            paragraph_ranking(_docs(retrieve(index, query, DEPTH, use_dense=False))))
        rankings["dense_only"].append(
            paragraph_ranking(_docs(retrieve(index, query, DEPTH, use_lexical=False))))
        text = to_simplified(m.strip_markers(answer.answer))
        records.append({
            "qid": q["qid"], "question": q["question"], "gold_paragraph": q["gold_paragraph"],
            "retrieved": ranking[: max(KS)], "answer": answer.answer,
            "short_answer": answer.short_answer, "refused": answer.refused,
            "citations": [{"n": c.n, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "quote": c.quote}
                          for c in answer.citations],
            "gold_answers": q["answers"],
            "rank": ranking.index(q["gold_paragraph"]) + 1 if q["gold_paragraph"] in ranking
            else None,
            "em": m.em(answer.short_answer, q["answers"]),
            "f1": round(m.f1(answer.short_answer, q["answers"]), 4),
            "contains": not answer.refused
            and m.contains_any(text, [to_simplified(a) for a in q["answers"]]),
            "ms": round(ask_ms[-1], 1),
        })
        bar.update()
    bar.close()

    golds = [r["gold_paragraph"] for r in records]
    summary: dict[str, Any] = {
        "dataset": Path(file).name, "questions": len(records), "paragraphs": len(docs),
        "embedder": index.embedder.name, "top_k": top_k,
        "generator": generator.name if generator else "extractive", "depth_chunks": DEPTH,
        **_ranking_scores([r["retrieved"] for r in records], golds),
        "em": m.mean(r["em"] for r in records), "f1": m.mean(r["f1"] for r in records),
        "contains": m.mean(r["contains"] for r in records),
        "citation_gold": m.mean(any(c["doc_id"] == r["gold_paragraph"] for c in r["citations"])
                                for r in records),
        "answered": m.mean(not r["refused"] for r in records),
        "short_answer_rate": m.mean(r["short_answer"] is not None for r in records),
        **ingest_stats,
        "query_p50_ms": round(m.percentile(ask_ms, 50) or 0, 1),
        "query_p95_ms": round(m.percentile(ask_ms, 95) or 0, 1),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ranking_mismatches": mismatches,
        **{name: _ranking_scores(r, golds) for name, r in rankings.items()},
    }
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"summary": summary, "records": records}, ensure_ascii=False,
                                   indent=1), encoding="utf-8")
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as Markdown for the terminal: retrieval against its baselines, then answers
    and cost.

    >>> print(format_summary({"hit@1": 0.5, "bm25": {"hit@1": 0.25}}).splitlines()[2])
    | hit@1 | 50.0% | 25.0% | n/a | n/a |
    """
    peers = ("bm25", "bm25_chunks", "dense_only")

    def pct(v: Any) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    lines = ["| retrieval (paragraph) | wenda | " + " | ".join(peers) + " |", "|---" * 5 + "|"]
    for key in (*(f"hit@{k}" for k in KS), f"mrr@{max(KS)}"):
        cells = [summary.get(key)] + [summary.get(p, {}).get(key) for p in peers]
        fmt = pct if key.startswith("hit") else (lambda v: "n/a" if v is None else f"{v:.3f}")
        lines.append(f"| {key} | " + " | ".join(fmt(c) for c in cells) + " |")
    lines += ["", "| answers | |", "|---|---|"]
    lines += [f"| {k} | {pct(summary.get(k))} |"
              for k in ("em", "f1", "contains", "citation_gold", "answered", "short_answer_rate")]
    lines += ["", "| cost | |", "|---|---|"]
    lines += [f"| {k} | {summary.get(k)} |" for k in
              ("questions", "paragraphs", "chunks", "ingest_seconds", "chunks_embedded",
               "query_p50_ms", "query_p95_ms", "peak_memory_mb", "total_seconds")]
    return "\n".join(lines)
