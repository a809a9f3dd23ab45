"""The public-benchmark runner behind ``rag bench squad``: any SQuAD-layout file, open-domain.

Every paragraph becomes a document (doc_id = paragraph id) in its own index directory
(incremental: a re-run embeds nothing), then every question goes through ``rag.qa.ask`` against
the whole collection. ``--limit N`` takes the first N questions but still ingests ALL paragraphs.

Paragraph ranking. ``ask`` returns only ``top_k`` chunks (what the answer was built from), and a
paragraph spans several chunks, so hit@10 needs a deeper list. The ranking of a record is
``Answer.passages`` (deduplicated to paragraphs), extended by ``rag.answer.retrieve.retrieve`` at depth
``DEPTH`` with the same normalized query. ``retrieve`` ranks independently of ``k``, so its head
equals the passages; ``ranking_mismatches`` counts the questions where it did not (expected 0).
The same query object also gives the baselines, in the same run over the same normalization:
``bm25`` — bm25s over jieba tokens of whole paragraphs (``rag.text.lexical``, the classic baseline);
``bm25_chunks`` / ``dense_only`` — the index's own lexical / dense leg alone (same chunks).

Real data has bad items: a question ``ask`` refuses (empty) or that fails, a paragraph with no
text, becomes an error row ``{"qid", "question", "gold_paragraph", "error"}``, counted in
``errors`` and left out of every mean; the run goes on. Runs resume (``evals.progress``).
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals.progress import Progress, fingerprint, progress_path, sigterm_as_interrupt, write_json_atomic
from evals.squad import load_squad
from rag.answer.generate import Generator
from rag.answer.retrieve import Hit, make_query, retrieve
from rag.errors import RagError
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.models.embed import Embedder, load_embedder
from rag.qa import ask
from rag.store.index import Index
from rag.text.lexical import Lexicon, tokenize
from rag.text.normalize import normalize, to_simplified

__all__ = ["DEPTH", "format_summary", "load_squad", "paragraph_ranking", "run_squad"]

DEPTH = 50  # chunks retrieved for the paragraph ranking (10 paragraphs need ~30 chunks)
KS = (1, 5, 10)
BASELINES = ("bm25", "bm25_chunks", "dense_only")
log = logging.getLogger("wenda.bench")


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


def _measure(index: Index, q: dict[str, Any], *, lexicon: Lexicon, order: list[str], top_k: int,
             generator: Generator | None) -> dict[str, Any]:
    """One question through ``ask``, with its paragraph ranking, baselines and scores."""
    t0 = time.perf_counter()
    answer = ask(index, q["question"], top_k=top_k, generator=generator)
    ms = (time.perf_counter() - t0) * 1000
    query = make_query(index, to_simplified(" ".join(q["question"].split())))
    deep = retrieve(index, query, DEPTH)
    head = [p.chunk_id for p in answer.passages]
    ranking = paragraph_ranking([p.doc_id for p in answer.passages] + _docs(deep))
    text = to_simplified(m.strip_markers(answer.answer))
    return {
        "qid": q["qid"], "question": q["question"], "gold_paragraph": q["gold_paragraph"],
        "retrieved": ranking[: max(KS)], "answer": answer.answer,
        "short_answer": answer.short_answer, "refused": answer.refused,
        "citations": [{"n": c.n, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "quote": c.quote}
                      for c in answer.citations],
        "gold_answers": q["answers"],
        "rank": ranking.index(q["gold_paragraph"]) + 1 if q["gold_paragraph"] in ranking else None,
        "em": m.em(answer.short_answer, q["answers"]),
        "f1": round(m.f1(answer.short_answer, q["answers"]), 4),
        "contains": not answer.refused
        and m.contains_any(text, [to_simplified(a) for a in q["answers"]]),
        "ms": round(ms, 1),
        # kept per row so a resumed run's summary is computed from every row, old and new
        "ranking_mismatch": head != [h.chunk.chunk_id for h in deep[: len(head)]],
        "baselines": {
            "bm25": [order[row] for row, _ in lexicon.search(query.tokens, max(KS))],
            "bm25_chunks": paragraph_ranking(_docs(retrieve(index, query, DEPTH, use_dense=False))),
            "dense_only": paragraph_ranking(_docs(retrieve(index, query, DEPTH, use_lexical=False))),
        },
    }


def _measure_safely(measure: Callable[[dict[str, Any]], dict[str, Any]],
                    q: dict[str, Any]) -> dict[str, Any]:
    """The question's record, or an error row ``{"qid", "question", "gold_paragraph", "error"}``:
    one bad item must not end a run of a thousand."""
    error, unexpected = q.get("error"), None
    if error is None:
        try:
            return measure(q)
        except RagError as exc:
            error = str(exc)
        except Exception as exc:  # a bug or a model failure on one item: logged, the run goes on
            error, unexpected = f"{type(exc).__name__}: {exc}", exc
    log.warning("question %s: %s", q["qid"], error, exc_info=unexpected)
    return {"qid": q["qid"], "question": q["question"], "gold_paragraph": q["gold_paragraph"],
            "error": error}


def _summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every metric from the records; error rows are counted and left out of every mean."""
    ok = [r for r in records if not r.get("error")]
    golds = [r["gold_paragraph"] for r in ok]
    ms = [r["ms"] for r in ok]
    return {
        "questions": len(records), "errors": len(records) - len(ok),
        **_ranking_scores([r["retrieved"] for r in ok], golds),
        "em": m.mean(r["em"] for r in ok), "f1": m.mean(r["f1"] for r in ok),
        "contains": m.mean(r["contains"] for r in ok),
        "citation_gold": m.mean(any(c["doc_id"] == r["gold_paragraph"] for c in r["citations"])
                                for r in ok),
        "answered": m.mean(not r["refused"] for r in ok),
        "short_answer_rate": m.mean(r["short_answer"] is not None for r in ok),
        "query_p50_ms": round(m.percentile(ms, 50) or 0, 1),
        "query_p95_ms": round(m.percentile(ms, 95) or 0, 1),
        "ranking_mismatches": sum(r["ranking_mismatch"] for r in ok),
        **{name: _ranking_scores([r["baselines"][name] for r in ok], golds) for name in BASELINES},
    }


def run_squad(file: Path, *, out_json: Path, index_dir: Path, limit: int | None = None,
              embedder: str | Embedder = "e5", top_k: int = 5, generator: Generator | None = None,
              progress: bool = True, restart: bool = False) -> dict[str, Any]:
    """Run a SQuAD-layout file open-domain; write ``{"summary", "records"}`` to ``out_json`` and
    return the summary (see the module docstring for the ranking and the baselines).

    Resumable: each record is appended to ``progress_path(out_json)`` as it is measured; a rerun
    with the same file and settings asks only the questions not measured yet (``restart``
    ignores them). Interrupted (Ctrl-C, SIGTERM), it writes what it measured with
    ``"complete": false`` and re-raises."""
    started = time.perf_counter()
    docs, questions = load_squad(file)
    if limit is not None:
        questions = questions[: max(limit, 0)]
    index = Index.open(index_dir, load_embedder(embedder) if isinstance(embedder, str) else embedder)
    ingest_stats = _ingest(index, docs, progress)
    settings = {"embedder": index.embedder.name, "top_k": top_k, "depth_chunks": DEPTH,
                "generator": generator.name if generator else "extractive"}
    log_file = Progress(progress_path(out_json), fingerprint(file, settings), key="qid",
                        restart=restart)
    rows = {q["qid"]: log_file.done[q["qid"]] for q in questions if q["qid"] in log_file.done}
    if rows:
        print(f"resuming: {len(rows)} of {len(questions)} already measured", file=sys.stderr)
    lexicon = Lexicon([tokenize(normalize(d.text).text) for d in docs])
    measure = partial(_measure, index, lexicon=lexicon, order=[d.doc_id for d in docs],
                      top_k=top_k, generator=generator)
    complete = False
    try:
        with sigterm_as_interrupt():
            todo = [q for q in questions if q["qid"] not in rows]
            with _progress(len(todo), "ask", progress) as bar:
                for q in todo:
                    rows[q["qid"]] = _measure_safely(measure, q)
                    log_file.add(rows[q["qid"]])
                    bar.update()
        complete = True
    finally:  # interrupted or not, the report holds every row measured so far
        records = [rows[q["qid"]] for q in questions if q["qid"] in rows]
        peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        summary = {"dataset": Path(file).name, "paragraphs": len(docs), **settings,
                   **_summarize(records), **ingest_stats, "peak_memory_mb": peak_mb,
                   "complete": complete, "total_seconds": round(time.perf_counter() - started, 1)}
        write_json_atomic(out_json, {"summary": summary, "records": records})
        log_file.close(finished=complete)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as Markdown for the terminal: retrieval against its baselines, then answers
    and cost; then a note on error rows and on an interrupted run, when there are any.

    >>> print(format_summary({"hit@1": 0.5, "bm25": {"hit@1": 0.25}}).splitlines()[2])
    | hit@1 | 50.0% | 25.0% | n/a | n/a |
    """
    peers = BASELINES

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
              ("questions", "errors", "paragraphs", "chunks", "ingest_seconds", "chunks_embedded",
               "query_p50_ms", "query_p95_ms", "peak_memory_mb", "total_seconds")]
    return "\n".join(lines + _notes(summary))


def _notes(summary: dict[str, Any]) -> list[str]:
    """What a reader of the table must know: means left error rows out, the run was cut short."""
    notes = []
    if summary.get("errors"):
        measured = summary["questions"] - summary["errors"]
        notes.append(f"errors: {summary['errors']} question(s) failed (error rows in the JSON "
                     f"report); every figure above is over the {measured} measured.")
    if summary.get("complete") is False:
        notes.append(f"incomplete: interrupted after {summary.get('questions')} question(s); "
                     "run the same command again to resume.")
    return ["", *notes] if notes else []
