"""Performance figures, each ratio measured within one run on the same machine state.

    python -m evals.perf ratios [--embedder e5] [--docs 150]   # make perf
    python -m evals.perf scale [--n 1000000] [--threshold N]   # make perf (minutes)
    python -m evals.perf load [--clients 50] [--seconds 30] [--runs 3]  # make stress
    python -m evals.perf llm [--questions 8] [--threads 1]     # the local LLM path
    python -m evals.perf report                                # the table from what was measured

``ratios`` (corpus: DRCD dev paragraphs, written out as files and ingested the way ``rag
ingest`` does):
- ingest / raw embedding — first build of the corpus vs ``embed_passages`` alone on the same
  chunk texts in the same batches (raw timed before and after the build; their mean is used);
  goal ≤ 1.2×;
- first build / re-ingest of the unchanged corpus (files read and hashed again); goal ≥ 50×;
- query p50: ``rag.qa.ask`` (extractive) vs ``embed_queries`` of the same question alone,
  interleaved question by question; goal ≤ 1.5×.
``llm``: the local LLM path over the seeds (gold questions that reach the generator): time to
first token (``rag.qa.ask``'s ``first_token``: retrieval, prompt, prefill, first decoded token)
beside llama.cpp's own prompt-prefill time and token count for the same call. llama.cpp reuses
the prompt prefix the previous question left in its cache, as it does in ``rag serve``.
Results go to ``evals/out/perf/*.json``; ``report`` writes ``report.md`` with the goals.
Timings are wall clock on a shared machine: compare the ratios, not the absolute numbers.
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

__all__ = ["format_report", "main", "measure_ratios"]

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "evals" / "out" / "perf"
DRCD = ROOT.parent / "shared" / "benchmarks" / "drcd_dev.json"
GOALS = {"ingest_vs_embed": ("≤", 1.2), "first_vs_reingest": ("≥", 50.0), "query_vs_embed": ("≤", 1.5)}


def _write_corpus(docs: Sequence[Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (folder / f"{doc.doc_id}.txt").write_text(doc.text, encoding="utf-8")


def _embed_all(embedder: Any, texts: list[str], batch: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed_passages(texts[i:i + batch])
    return time.perf_counter() - t


def measure_ratios(docs: Sequence[Any], questions: Sequence[str], embedder: Any, work_dir: Path, *,
                   batch: int = 32, log: Any = print) -> dict[str, Any]:
    """The three ratios for ``embedder`` over ``docs`` (``Document``s) and ``questions``."""
    from rag.answer.generate import load_generator
    from rag.ingest import ingest
    from rag.ingest.documents import load_documents
    from rag.qa import ask
    from rag.store.index import Index
    from rag.text.chunk import chunk_document
    from rag.text.lexical import tokenize
    from rag.text.normalize import normalize, to_simplified

    corpus = work_dir / "corpus"
    _write_corpus(docs, corpus)
    embedder.embed_passages(["预热", "warm up"])
    embedder.embed_queries(["预热"])
    tokenize("预热")  # jieba loads its dictionary once per process (~1 s), like a model: not timed
    index = Index.open(work_dir / "index", embedder)
    # the chunk texts ingest will embed, in its order: raw embedding is timed before and after
    # the build, so a machine getting busier or quieter meanwhile biases neither side
    texts = [c.text for d in load_documents([corpus])
             for c in chunk_document(d.doc_id, normalize(d.text), 240, 1)]
    raw = [_embed_all(embedder, texts, batch)]
    t = time.perf_counter()
    report = ingest(index, load_documents([corpus]), batch=batch)
    first = time.perf_counter() - t
    raw.append(_embed_all(embedder, texts, batch))
    assert texts == [c.text for _, c in sorted(index.chunks.items())]
    log(f"first build {first:.1f} s ({report.chunks_embedded} chunks); raw embedding {raw[0]:.1f} / "
        f"{raw[1]:.1f} s")
    t = time.perf_counter()
    again = ingest(index, load_documents([corpus]), batch=batch)
    reingest = time.perf_counter() - t
    assert not again.changed and again.chunks_embedded == 0
    log(f"re-ingest of the unchanged corpus {reingest * 1000:.0f} ms")
    generator = load_generator("extractive")
    for q in questions[:3]:  # warm caches (jieba, BM25, numba) before timing
        ask(index, q, generator=generator)
    asks, embeds = [], []
    for q in questions:
        t = time.perf_counter()
        embedder.embed_queries([to_simplified(q)])
        embeds.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ask(index, q, generator=generator)
        asks.append((time.perf_counter() - t) * 1000)
    p50_ask, p50_embed = float(np.percentile(asks, 50)), float(np.percentile(embeds, 50))
    log(f"query p50: ask {p50_ask:.1f} ms, embedding alone {p50_embed:.1f} ms")
    return {
        "embedder": embedder.name, "documents": len(docs), "chunks": len(texts), "batch": batch,
        "first_build_s": round(first, 2), "raw_embed_s": [round(r, 2) for r in raw],
        "chunks_per_s_raw": round(len(texts) / float(np.mean(raw)), 1),
        "chunks_per_s_ingest": round(len(texts) / first, 1),
        "reingest_ms": round(reingest * 1000, 1), "questions": len(questions),
        "ask_p50_ms": round(p50_ask, 1), "ask_p95_ms": round(float(np.percentile(asks, 95)), 1),
        "embed_query_p50_ms": round(p50_embed, 1),
        "ratios": {"ingest_vs_embed": round(first / float(np.mean(raw)), 3),
                   "first_vs_reingest": round(first / reingest, 1),
                   "query_vs_embed": round(p50_ask / p50_embed, 3)}}


def measure_llm(index: Any, questions: Sequence[str], generator: Any, *, log: Any = print
                ) -> dict[str, Any]:
    """Time to first token beside prompt prefill, per question that reaches ``generator`` (a
    ``LocalLLM``); llama.cpp's counters are reset before each question."""
    import llama_cpp

    from rag.qa import ask

    ctx = generator._llm.ctx  # the llama.cpp context whose counters time the prefill
    rows = []
    for q in questions:
        llama_cpp.llama_perf_context_reset(ctx)
        answer = ask(index, q, generator=generator)
        perf = llama_cpp.llama_perf_context(ctx)
        t = answer.timings_ms
        if not t["generate"]:  # refused before generation: no prompt was run
            continue
        rows.append({"first_token_ms": t["first_token"], "retrieve_ms": t["retrieve"],
                     "prefill_ms": round(perf.t_p_eval_ms, 1), "prompt_tokens": perf.n_p_eval,
                     "decode_ms_per_token": round(perf.t_eval_ms / max(perf.n_eval, 1), 1)})
        log(f"first token {t['first_token']:.0f} ms = retrieve {t['retrieve']:.0f} + prefill "
            f"{perf.t_p_eval_ms:.0f} ms ({perf.n_p_eval} tokens) + the rest")
    p50 = {key: round(float(np.median([r[key] for r in rows])), 1) for key in rows[0]} if rows else {}
    return {"generator": generator.name, "questions": len(rows), "p50": p50, "first": rows[:1],
            "rows": rows}


def _drcd(n_docs: int, n_questions: int, path: Path = DRCD) -> tuple[list[Any], list[str]]:
    from evals.bench import load_squad

    docs, questions = load_squad(path)
    docs = docs[:n_docs]
    keep = {d.doc_id for d in docs}
    return docs, [q["question"] for q in questions if q["gold_paragraph"] in keep][:n_questions]


def _meets(value: float, goal: tuple[str, float]) -> str:
    ok = value <= goal[1] if goal[0] == "≤" else value >= goal[1]
    return "yes" if ok else "**no**"


def format_report(results: dict[str, Any]) -> str:
    """Markdown: one row per figure, with its goal where issue 6 set one."""
    rows = ["| figure | measured | goal | met |", "|---|---|---|---|"]
    for r in results.get("ratios", []):
        e = r["embedder"]
        for key, label in (("ingest_vs_embed", "ingest time / raw embedding time"),
                           ("first_vs_reingest", "first build / re-ingest (unchanged)"),
                           ("query_vs_embed", "query p50 (extractive) / query-embedding p50")):
            sign, goal = GOALS[key]
            rows.append(f"| {label} [{e}, {r['chunks']} chunks] | {r['ratios'][key]}× | {sign} {goal}× "
                        f"| {_meets(r['ratios'][key], GOALS[key])} |")
        rows.append(f"| ↳ {e}: {r['first_build_s']} s build, {r['reingest_ms']} ms re-ingest, ask p50 "
                    f"{r['ask_p50_ms']} ms vs embed {r['embed_query_p50_ms']} ms | | | |")
    if s := results.get("scale"):
        rows.append(f"| recall@10 vs flat, {s['n']:,} × {s['dim']} synthetic, {s['index']} "
                    f"(efSearch {s.get('ef_search_used')}) | {s['recall_at_default']} | ≥ 0.95 "
                    f"| {_meets(s['recall_at_default'], ('≥', 0.95))} |")
        default = s["recall"][str(s.get("ef_search_used", "exact"))]
        rows.append(f"| ↳ query p50 / p95, approximate vs flat | {default['p50_ms']} / {default['p95_ms']} "
                    f"ms vs {s['flat_p50_ms']} / {s['flat_p95_ms']} ms | | |")
        rows.append(f"| ↳ index size (in RAM ≈ on disk); build time | {s['index_file_mb']:,} MB "
                    f"(raw vectors {s['raw_vectors_mb']:,} MB); {s['build_s']:,} s | | |")
    if (llm := results.get("llm")) and llm["p50"]:
        m = llm["p50"]
        rows.append(f"| LLM path ({llm['generator']}, {llm['questions']} questions): time to first token "
                    f"p50 beside prompt prefill p50 | {m['first_token_ms']} ms vs {m['prefill_ms']} ms "
                    f"({m['prompt_tokens']} prompt tokens); retrieval {m['retrieve_ms']} ms "
                    "| reported | yes |")
    for n, ld in enumerate(results.get("load", []), 1):
        rows.append(f"| load run {n}: {ld['clients']} clients × {ld['seconds']} s on loopback — errors | "
                    f"{ld['errors']} of {ld['requests']} | 0 | {_meets(ld['errors'], ('≤', 0))} |")
        rows.append(f"| ↳ latency p50 / p95 / p99; throughput | {ld.get('p50_ms')} / {ld.get('p95_ms')} / "
                    f"{ld.get('p99_ms')} ms; {ld['throughput_rps']} req/s | | |")
    return "\n".join(rows) + "\n"


def _save(name: str, data: Any) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def _load_results() -> dict[str, Any]:
    return {name: json.loads((OUT / f"{name}.json").read_text())
            for name in ("ratios", "scale", "load", "llm") if (OUT / f"{name}.json").exists()}


def _llm(n: int, model: str, threads: int, max_tokens: int) -> dict[str, Any]:
    from rag.answer.llm import LocalLLM
    from rag.ingest import ingest
    from rag.ingest.documents import load_documents
    from rag.models.embed import load_embedder
    from rag.store.index import Index

    gold = [json.loads(line) for line in (ROOT / "evals" / "gold" / "seeds.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    questions = [g["question"] for g in gold if not g.get("unanswerable")]
    generator = LocalLLM(model, threads=threads, max_tokens=max_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.open(Path(tmp) / "index", load_embedder("e5"))
        ingest(index, load_documents([ROOT / "seeds"]))
        return measure_llm(index, questions[:n], generator)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.perf", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ratios")
    p.add_argument("--embedder", action="append", help="repeatable; default: e5 and use")
    p.add_argument("--docs", type=int, default=150)
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--corpus", type=Path, default=DRCD, help="a SQuAD-layout file")
    p = sub.add_parser("scale")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--threshold", type=int, default=None, help="override rag.store.index.HNSW_ABOVE")
    p = sub.add_parser("load")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--runs", type=int, default=1, help="consecutive runs against one server")
    p.add_argument("--embedder", default=None, help="RAG_EMBEDDER for the server (default: its own)")
    p = sub.add_parser("llm")
    p.add_argument("--questions", type=int, default=8, help="answerable gold questions that reach the LLM")
    p.add_argument("--model", default="qwen-0.5b")
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads (the machine is shared)")
    p.add_argument("--max-tokens", type=int, default=48, help="the answer length does not change TTFT")
    sub.add_parser("report")
    args = parser.parse_args(argv)

    if args.command == "ratios":
        from rag.models.embed import load_embedder

        docs, questions = _drcd(args.docs, args.questions, args.corpus)
        results = []
        for name in args.embedder or ["e5", "use"]:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(measure_ratios(docs, questions, load_embedder(name), Path(tmp)))
        _save("ratios", results)
    elif args.command == "scale":
        from evals.scale import run_scale

        _save("scale", run_scale(args.n, threshold=args.threshold))
    elif args.command == "load":
        from evals.load import run_load, serve

        with tempfile.TemporaryDirectory() as tmp:
            env = {"RAG_EMBEDDER": args.embedder} if args.embedder else {}
            with serve(Path(tmp) / "index", env=env) as base:
                runs = []
                for _ in range(args.runs):
                    runs.append(run_load(base, clients=args.clients, seconds=args.seconds))
                    print(json.dumps(runs[-1], ensure_ascii=False, indent=1), flush=True)
        _save("load", runs)
        if errors := sum(r["errors"] for r in runs):
            raise SystemExit(f"{errors} errors under load")
    elif args.command == "llm":
        _save("llm", _llm(args.questions, args.model, args.threads, args.max_tokens))
    report = format_report(_load_results())
    (OUT / "report.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
