"""The gold-set runner behind ``rag eval``: every question goes through ``rag.qa.ask`` (the one
pipeline; nothing here retrieves or answers by itself), each Answer is scored against the gold
item, and the run is written as per-question records (JSON), a Markdown report and a plot.

Gold format (DESIGN.md): ``{"id", "question", "must_include": [[spelling, ...], ...], "doc",
"evidence", "docs"?}`` or ``{"id", "question", "unanswerable": true}``.

Scoring choices, each visible in the records:
- correct: an answerable item is answered (not refused) and every must_include fact has one
  spelling in the answer text (citation markers dropped; both sides ``to_simplified`` +
  casefold); an unanswerable item is correct when refused;
- retrieval: a passage is relevant when the normalized passage contains ``evidence`` (primary)
  or comes from ``doc``/``docs`` (``doc_`` metrics, secondary); answerable items only;
- citation precision: micro-averaged over the citations of answered answerable items.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from evals import metrics as m
from evals.report import plot_accuracy_latency, write_report
from rag.answer.generate import Generator, load_generator, local_available
from rag.answer.reading import load_judge, reader_available
from rag.ingest import ingest
from rag.ingest.documents import load_documents
from rag.models.embed import load_embedder
from rag.qa import ask
from rag.schema import Answer
from rag.store.index import Index
from rag.text.normalize import to_simplified

__all__ = ["CONFIG_KEYS", "DEFAULT_CONFIGS", "check_floor", "compare", "load_gold", "run_gold",
           "score", "seeds_opener", "summarize"]

log = logging.getLogger("wenda.eval")
CONFIG_KEYS = ("name", "embedder", "generator", "top_k")  # handled here; the rest go to ask()
DEFAULT_CONFIGS: list[dict[str, Any]] = [
    {"name": "e5", "embedder": "e5"},
    {"name": "use", "embedder": "use"},
    {"name": "e5 top3", "embedder": "e5", "top_k": 3},
    {"name": "e5 top10", "embedder": "e5", "top_k": 10},
    {"name": "e5 bm25-only", "embedder": "e5", "use_dense": False},
    {"name": "e5 dense-only", "embedder": "e5", "use_lexical": False},
    # the re-ranking stage (top 10 re-scored by coverage and verbatim run) switched off
    {"name": "e5 no-rerank", "embedder": "e5", "rescore": False},
    # the trained reader (rag.answer.reading), where its weights are built (make reader)
    *({"name": f"e5 reader {gate}", "embedder": "e5", "reader": gate}
      for gate in ("reader", "both", "span", "short", "confident") if reader_available()),
    # LLM generators side by side with the extractive rows above, for each installed model
    *({"name": f"e5 local {m}", "embedder": "e5", "generator": f"local:{m}"}
      for m in ("qwen-0.5b", "qwen-1.5b") if local_available(m)),
]


def _gold_problem(item: Any) -> str | None:
    """Why a parsed line is not a gold item, or None."""
    if not isinstance(item, dict):
        return "not a JSON object"
    if item.get("id") in (None, "") or not isinstance(item.get("question"), str):
        return 'no "id" or no "question" text'
    facts = item.get("must_include", [])
    if not isinstance(facts, list) or not all(
            isinstance(f, list) and all(isinstance(s, str) for s in f) for f in facts):
        return '"must_include" is not a list of lists of strings'
    if not all(isinstance(item.get(k, ""), str) for k in ("doc", "evidence")) or not isinstance(
            item.get("docs", []), list) or not isinstance(item.get("unanswerable", False), bool):
        return '"doc", "evidence", "docs" or "unanswerable" has the wrong type'
    return None


def _parse_gold_line(n: int, line: str) -> dict[str, Any]:
    """Line ``n`` as a gold item, or as ``{"id", "question", "malformed"}`` saying what is wrong
    (the run reports it as an error row instead of stopping)."""
    problem: str | None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        item, problem = None, f"invalid JSON ({exc})"
    else:
        problem = _gold_problem(item)
    if problem is None:
        return dict(item)
    known = item if isinstance(item, dict) else {}
    return {"id": known.get("id") or f"line {n}", "question": known.get("question"),
            "malformed": f"line {n}: {problem}"}


def load_gold(dataset: Path) -> list[dict[str, Any]]:
    """The gold items of a JSONL file (blank lines skipped); a malformed line comes back as
    ``{"id", "question", "malformed": "line N: why"}``."""
    lines = Path(dataset).read_text(encoding="utf-8").splitlines()
    return [_parse_gold_line(n, line) for n, line in enumerate(lines, 1) if line.strip()]


@lru_cache(maxsize=8192)
def _norm(text: str) -> str:
    return to_simplified(text).casefold()


def _unsupported(answer: Answer) -> float | None:
    """Share of answer sentences an LLM wrote without support, when the Answer reports it
    (``unsupported_rate``, or ``unsupported_sentences`` with ``sentences``); else None."""
    data = answer.model_dump()
    if isinstance(data.get("unsupported_rate"), int | float):
        return float(data["unsupported_rate"])
    bad, total = data.get("unsupported_sentences"), data.get("sentences")
    if bad is None or not total:
        return None
    n_bad = len(bad) if isinstance(bad, list) else int(bad)
    return n_bad / (len(total) if isinstance(total, list) else int(total))


def score(item: Mapping[str, Any], answer: Answer | None, *, wall_ms: float,
          error: str | None = None) -> dict[str, Any]:
    """One per-question record: the gold item, what came back, and every per-question measure."""
    unanswerable = bool(item.get("unanswerable"))
    rec: dict[str, Any] = {
        "id": item["id"], "question": item["question"], "kind": item.get("kind"),
        "lang": item.get("lang"), "unanswerable": unanswerable,
        "expected": "(refuse)" if unanswerable else item.get("must_include"),
        "doc": item.get("doc"), "evidence": item.get("evidence"), "error": error,
        "wall_ms": round(wall_ms, 1),
    }
    if answer is None:
        return rec | {"answer": None, "short_answer": None, "refused": False, "correct": False,
                      "passages": [], "citations": [], "timings_ms": {}, "unsupported": None}
    docs = {item.get("doc"), *item.get("docs", [])} - {None}
    evidence = item.get("evidence") or ""
    texts = {p.chunk_id: p.text for p in answer.passages}

    def has_evidence(text: str) -> bool:
        return bool(evidence) and evidence.casefold() in _norm(text)

    if unanswerable:
        correct = answer.refused
    else:
        facts = [[_norm(s) for s in spellings] for spellings in item.get("must_include", [])]
        correct = not answer.refused and m.facts_present(_norm(m.strip_markers(answer.answer)), facts)
    return rec | {
        "answer": answer.answer, "short_answer": answer.short_answer, "refused": answer.refused,
        "correct": correct, "generator": answer.generator, "timings_ms": answer.timings_ms,
        "unsupported": _unsupported(answer),
        "passages": [{"doc_id": p.doc_id, "chunk_id": p.chunk_id, "score": p.score,
                      "has_evidence": has_evidence(p.text), "from_doc": p.doc_id in docs}
                     for p in answer.passages],
        "citations": [{"n": c.n, "doc_id": c.doc_id, "chunk_id": c.chunk_id, "quote": c.quote,
                       "has_evidence": has_evidence(c.passage or texts.get(c.chunk_id, c.quote))
                       or (bool(c.quote.strip()) and _norm(c.quote) in evidence.casefold()),
                       "from_doc": c.doc_id in docs}
                      for c in answer.citations],
    }


def summarize(records: Sequence[Mapping[str, Any]], *, name: str = "default",
              top_k: int | None = None) -> dict[str, Any]:
    """The metrics of DESIGN.md from per-question records (so a saved run can be re-summarized)."""
    answerable = [r for r in records if not r["unanswerable"]]
    unanswerable = [r for r in records if r["unanswerable"]]
    ev = [[p["has_evidence"] for p in r["passages"]] for r in answerable]
    dc = [[p["from_doc"] for p in r["passages"]] for r in answerable]
    cited = [c for r in answerable if not r["refused"] for c in r["citations"]]
    refusals = m.refusal_scores([r["refused"] for r in records], [r["unanswerable"] for r in records])
    wall = [r["wall_ms"] for r in records if r["error"] is None]
    timing_keys = sorted({k for r in records for k in r["timings_ms"]})
    generators = sorted({str(r["generator"]) for r in records if r.get("generator")})
    summary: dict[str, Any] = {
        "name": name, "generator": ",".join(generators) or None, "top_k": top_k,
        "n": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "errors": sum(r["error"] is not None for r in records),
        "accuracy": m.mean(r["correct"] for r in records),
        "answerable_accuracy": m.mean(r["correct"] for r in answerable),
        "unanswerable_accuracy": m.mean(r["correct"] for r in unanswerable),
        "refusal_precision": refusals["precision"], "refusal_recall": refusals["recall"],
        "false_refusals": refusals["false_refusals"],
        "hit@1": m.mean(m.hit_at(x, 1) for x in ev), "hit@5": m.mean(m.hit_at(x, 5) for x in ev),
        "mrr": m.mean(m.reciprocal_rank(x) for x in ev),
        "ndcg@5": m.mean(m.ndcg_at(x, 5) for x in ev),
        "doc_hit@1": m.mean(m.hit_at(x, 1) for x in dc),
        "doc_hit@5": m.mean(m.hit_at(x, 5) for x in dc),
        "doc_mrr": m.mean(m.reciprocal_rank(x) for x in dc),
        "citation_precision": m.mean(c["has_evidence"] for c in cited),
        "citation_doc_precision": m.mean(c["from_doc"] for c in cited),
        "unsupported_rate": m.mean(r["unsupported"] for r in records
                                   if r.get("unsupported") is not None),
        "latency_p50_ms": m.percentile(wall, 50), "latency_p95_ms": m.percentile(wall, 95),
    }
    for key in timing_keys:
        values = [r["timings_ms"][key] for r in records if key in r["timings_ms"]]
        summary[f"{key}_p50_ms"] = m.percentile(values, 50)
        summary[f"{key}_p95_ms"] = m.percentile(values, 95)
    return summary


def run_gold(index: Index, dataset: Path, *, generator: Generator | None = None, top_k: int = 5,
             out_json: Path | None = None, report_md: Path | None = None,
             plot_png: Path | None = None, name: str = "default",
             ask_kwargs: Mapping[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Ask every gold question through ``rag.qa.ask`` and score it; returns the summary.

    Writes ``{"summary", "records"}`` to ``out_json``, a Markdown report to ``report_md`` and the
    accuracy/latency plot to ``plot_png`` (default: ``report_md`` with a ``.png`` suffix).
    ``ask_kwargs`` go to ``ask`` unchanged (e.g. ``refuse_below``)."""
    items = load_gold(dataset)
    records = []
    iterator: Any = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc=f"eval {name}", unit="q")
    for item in iterator:
        started = time.perf_counter()
        answer: Answer | None = None
        error = item.get("malformed")
        try:
            if error is None:
                answer = ask(index, item["question"], top_k=top_k, generator=generator,
                             **dict(ask_kwargs or {}))
        except Exception as exc:  # a crash is a failed question, not a failed run
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:  # a malformed line's message already names its line
            log.warning("%s", error if item.get("malformed") else f"{item['id']}: {error}")
        records.append(score(item, answer, wall_ms=(time.perf_counter() - started) * 1000,
                             error=error))
    summary = summarize(records, name=name, top_k=top_k)
    summary["dataset"] = str(dataset)
    summary["index"] = index.stats()
    _write_outputs({name: (summary, records)}, out_json, report_md, plot_png)
    return summary


def _write_outputs(runs: Mapping[str, tuple[dict[str, Any], list[dict[str, Any]]]],
                   out_json: Path | None, report_md: Path | None, plot_png: Path | None) -> None:
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        payload: Any = ({"summary": s, "records": r} for s, r in runs.values())
        payload = next(payload) if len(runs) == 1 else list(payload)
        out_json.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    if report_md is not None:
        plot_png = plot_png or report_md.with_suffix(".png")
    if plot_png is not None:
        plot_accuracy_latency([s for s, _ in runs.values()], plot_png)
    if report_md is not None:
        write_report(report_md, runs, plot=plot_png)


def _split_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(kwargs ``ask`` accepts, knobs it does not have) of a configuration."""
    accepted = set(inspect.signature(ask).parameters) - {"index", "question", "top_k", "generator"}
    extra = {k: v for k, v in config.items() if k not in CONFIG_KEYS}
    return {k: v for k, v in extra.items() if k in accepted}, sorted(set(extra) - accepted)


def seeds_opener(seeds_dir: Path, root: Path) -> Callable[[str], Index]:
    """``open_index`` for ``compare``: one index per embedder under ``root`` (``index-e5`` ...),
    brought up to date with ``seeds_dir`` incrementally (re-runs embed nothing new)."""
    cache: dict[str, Index] = {}

    def open_index(embedder: str) -> Index:
        if embedder not in cache:
            index = Index.open(root / f"index-{embedder}", load_embedder(embedder))
            ingest(index, load_documents([seeds_dir]), prune=True)
            cache[embedder] = index
        return cache[embedder]

    return open_index


def compare(configs: Sequence[Mapping[str, Any]] | None, dataset: Path, out_dir: Path, *,
            open_index: Callable[[str], Index] | None = None,
            seeds_dir: Path = Path("seeds")) -> list[dict[str, Any]]:
    """Run the gold set once per configuration; returns one summary row per configuration and
    writes ``out_dir/compare.{json,md,png}``.

    A configuration is a dict: ``name``, ``embedder`` (index from ``open_index(embedder)``),
    ``generator`` (a ``load_generator`` name), ``top_k``; every other key is passed to
    ``rag.qa.ask`` when ``ask`` has that parameter, and otherwise listed in the row's
    ``ignored`` (the row then measures the default for that knob). ``configs=None`` runs
    ``DEFAULT_CONFIGS``; ``open_index`` defaults to ``seeds_opener(seeds_dir, out_dir)``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    open_index = open_index or seeds_opener(seeds_dir, out_dir)
    runs: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for i, config in enumerate(configs or DEFAULT_CONFIGS):
        name = str(config.get("name") or f"config{i + 1}")
        kwargs, ignored = _split_config(config)
        if kwargs.get("reader"):  # a gate's name in the configuration, the loaded judge for ask
            kwargs["reader"] = load_judge(kwargs["reader"])
        index = open_index(str(config.get("embedder", "e5")))
        generator = load_generator(config["generator"]) if config.get("generator") else None
        records_json = out_dir / f"records-{i + 1:02d}.json"
        summary = run_gold(index, dataset, generator=generator, top_k=int(config.get("top_k", 5)),
                           out_json=records_json, name=name, ask_kwargs=kwargs)
        summary |= {"config": dict(config), "ignored": ignored, "embedder": index.embedder.name}
        runs[name] = (summary, json.loads(records_json.read_text(encoding="utf-8"))["records"])
    _write_outputs(runs, out_dir / "compare.json", out_dir / "compare.md", out_dir / "compare.png")
    return [s for s, _ in runs.values()]


def check_floor(summary: Mapping[str, Any], min_accuracy: float) -> list[str]:
    """Reasons a run misses the CI floor (empty list = pass): answerable accuracy below
    ``min_accuracy``, an unanswerable question answered, or a question that raised."""
    problems = []
    acc = summary.get("answerable_accuracy")
    if acc is None or acc < min_accuracy:
        problems.append(f"answerable accuracy {acc} < floor {min_accuracy}")
    if summary.get("unanswerable") and summary.get("refusal_recall") != 1.0:
        problems.append(f"refusal recall {summary.get('refusal_recall')}: an unanswerable was answered")
    if summary.get("errors"):
        problems.append(f"{summary['errors']} question(s) raised")
    return problems
