"""The reader in the pipeline, open-domain, on articles it never trained on: who should refuse.

    python -m evals.reader_pipeline [--part validation|tune] [--articles N] [--questions N] [--fit]

The collection holds every paragraph of the split part's articles (or ``N`` per set). Every
question is asked in its question form and its keyword form: answerable ones, and
pseudo-unanswerable ones (other questions asked with their gold paragraph filtered out, ``Filter``:
the rest of the article stays, on topic; kept only when no other paragraph holds a gold answer).

Each question goes through the pipeline once (``rag.qa``, reader off) and the record keeps what
every refusal rule needs: the coverage gate's decision (and whether the question's form checks
passed), the reader's verdict over the top passages and over the ones the extractive answer
quotes (margin, span, how many), the extractive answer. The rules are then scored from the
records: their refusals are exact (they depend on nothing else); a short answer counts only
where the pipeline shows it. ``--fit`` (on the tune part) picks the "confident" gate's two
margins and writes them beside the weights; the table of the validation part is the report.
Writes evals/out/reader_pipeline-<part>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from functools import cache
from pathlib import Path
from typing import Any

from evals import reader_data
from evals.metrics import em, f1
from rag.answer.draft import Evidence
from rag.answer.extract import from_span, lead
from rag.answer.reading import Readings, Verdict, load_judge
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.models import reader
from rag.models.embed import load_embedder
from rag.qa import _inside, _Options, _Run
from rag.store.filters import Filter
from rag.store.index import Index
from rag.text.normalize import has_cjk, to_simplified

OUT = Path(__file__).resolve().parent / "out"
WORK = reader_data.ROOT / ".rag-bench" / "reader-pipeline"
SEED = 7


def collection(part: str, articles_per_set: int, per_set: int) -> tuple[list[Document], list[dict[str, Any]]]:
    """Every paragraph of the part's articles, and the questions: per set, ``per_set`` answerable
    ones (each in two forms) and half as many others asked with their gold paragraph filtered out,
    sampled with a fixed seed."""
    articles = reader_data.load_articles()
    keys = reader_data.split_articles(list(articles))[part]
    rng = random.Random(SEED)
    docs, questions = [], []
    for name in reader_data.SETS:
        mine = sorted(k for k in keys if k.startswith(name + ":"))
        chosen = sorted(rng.sample(mine, articles_per_set)) if 0 < articles_per_set < len(mine) else mine
        paragraphs = {f"{key}#{i}": p for key in chosen for i, p in enumerate(articles[key])}
        docs += [Document.from_text(doc_id, p["context"]) for doc_id, p in paragraphs.items()]
        pool = []
        for doc_id, p in paragraphs.items():
            for qa in p["qas"]:
                golds = [a["text"] for a in qa.get("answers", []) if a.get("text")]
                if qa.get("question") and golds:
                    pool.append({"qid": qa["id"], "question": qa["question"], "answers": golds,
                                 "form": "question", "unanswerable": False, "gold": doc_id})
        rng.shuffle(pool)
        # no other paragraph may hold a gold answer, else the question is still answerable
        hidden = [q for q in pool[per_set:] if not any(
            g in p["context"] for g in q["answers"] for d, p in paragraphs.items() if d != q["gold"])]
        questions += [f for q in pool[:per_set] for f in _forms(q)]
        questions += [f for q in hidden[:per_set // 2] for f in _forms(q | {"unanswerable": True})]
    return docs, questions


def _forms(q: dict[str, Any]) -> list[dict[str, Any]]:
    """The question as asked, and its keyword form (question words dropped) where that differs."""
    keyword = reader_data.keyword_variant(to_simplified(q["question"]))
    if keyword:
        return [q, q | {"question": keyword, "form": "keyword"}]
    return [q]


def record(index: Index, question: dict[str, Any], j: Any, doc_ids: list[str]) -> dict[str, Any]:
    """What every rule needs: the gate's decision, the reader's verdict, the extractive answer."""
    where = Filter(doc_ids=tuple(d for d in doc_ids if d != question["gold"])) \
        if question["unanswerable"] else None
    run = _Run(index, question["question"], _Options(where=where))
    readings = Readings(j, run.normalized)  # each passage read once, as in qa
    verdict = readings.best(run.passages[:j.depth])
    span, sentence, drafted = _text(run, verdict), None, None
    if verdict is not None:
        drafted = from_span(run.passages, Evidence(verdict.n, verdict.nstart, verdict.nend))
        sentence = run.finish(drafted).answer if drafted else None
    draft = run.draft() if run.supported else None
    quoted, read = None, []  # the reader over the passages the extractive answer quotes, as in qa
    led = None  # the answer "confident" gives when the reader's sentence leads the extractive one
    if draft is not None and draft.evidence:
        read = run.quoted(draft)
        quoted = readings.best(read)
        agrees = quoted is not None and quoted.answerable and _inside(quoted, draft)
        if drafted is not None and verdict is not None and not agrees and not _inside(verdict, draft):
            led = run.finish(lead(drafted, draft, run.passages)).answer
    answer = run.finish(draft)
    return question | {"gate": run.supported, "checked": run.checked,
                       "quoted_passages": len(read), "margin": verdict.margin if verdict else None,
                       "quoted_margin": quoted.margin if quoted else None, "quoted_span": _text(run, quoted),
                       "span": span, "reader_answer": sentence or span, "led_answer": led,
                       "short": answer.short_answer if not answer.refused else None,
                       "answer": None if answer.refused else answer.answer}


def _text(run: _Run, verdict: Verdict | None) -> str:
    """The characters of a verdict's span ("" for none)."""
    if verdict is None:
        return ""
    p = run.passages[verdict.n - 1]
    return p.text[verdict.nstart - p.hit.chunk.nstart:verdict.nend - p.hit.chunk.nstart]


def decide(r: dict[str, Any], rule: str, threshold: float, hi: float = 0.0,
           lo: float = -math.inf) -> tuple[str, str] | None:
    """The short answer and the answer a rule gives (None: refused). A reader-decided answer is
    its span's sentence with its context, as the pipeline builds it (``from_span``). Where the
    gate answers, the short answer is the reader's span when it lies in the answer ("short" and
    "confident"); "confident" also reads the top passages: where its span lies outside the answer,
    its sentence leads the answer (``led_answer``); where the one passage the answer quotes has a
    margin below ``lo``, the extractive answer goes (refused, unless the top passages' margin is
    above ``hi``: the reader's sentence alone). Where the gate refuses, "confident" overrules only
    refusals for too few shared words, above ``hi``."""
    margin = r["margin"] if r["margin"] is not None else -math.inf
    reader_says = margin > threshold and bool(r["span"])
    by_reader = (r["span"], r["reader_answer"])
    by_gate = (r["short"], r["answer"]) if r["gate"] and r["answer"] is not None else None
    if rule == "off":
        return by_gate
    if rule == "reader":
        return by_reader if reader_says else None
    if rule == "both":
        return by_reader if reader_says and r["gate"] else None
    if by_gate is not None and rule in ("short", "confident"):
        quoted = r.get("quoted_margin", r["margin"])
        quoted = quoted if quoted is not None else -math.inf
        one = r.get("quoted_passages", 1) == 1
        chinese = rule == "confident" and has_cjk(r["question"])
        vetoed = chinese and quoted < lo and one  # the one passage the answer quotes does not answer
        led = r.get("led_answer")  # (None: the reader's span lies in the answer, or no sentence)
        if chinese and reader_says and led and (not vetoed or margin > hi):
            return r["span"], (r["reader_answer"] if vetoed else led)  # its sentence leads
        if vetoed:
            return None
        span = r.get("quoted_span", r["span"])
        inside = quoted > threshold and span and to_simplified(span) in _simplified(r["answer"])
        return (span if inside else r["short"]), r["answer"]
    if rule == "confident" and not r["gate"] and r.get("checked", True):  # it overrules a refusal
        return by_reader if margin > hi and r["span"] else None
    return None


def score(records: list[dict[str, Any]], rule: str, threshold: float, hi: float = 0.0,
          lo: float = -math.inf) -> dict[str, float]:
    """Per form: answered, right (the answer holds a gold answer), short-answer F1 and EM;
    unanswerable: refused."""
    out: dict[str, float] = {}
    for form in ("question", "keyword"):
        rows = [r for r in records if not r["unanswerable"] and r["form"] == form]
        given = [(decide(r, rule, threshold, hi, lo), r) for r in rows]
        n = max(1, len(rows))
        out[f"{form} answered %"] = 100 * sum(a is not None for a, _ in given) / n
        out[f"{form} right %"] = 100 * sum(_metric(_holds, a[1], r) for a, r in given if a) / n
        out[f"{form} F1"] = 100 * sum(_metric(f1, a[0], r) for a, r in given if a) / n
        out[f"{form} EM"] = 100 * sum(_metric(em, a[0], r) for a, r in given if a) / n
    for form, key in (("question", "unanswerable refused %"), ("keyword", "keyword unanswerable refused %")):
        rows = [r for r in records if r["unanswerable"] and r["form"] == form]
        if rows:
            out[key] = 100 * sum(decide(r, rule, threshold, hi, lo) is None for r in rows) / len(rows)
    return {k: round(v, 1) for k, v in out.items()}


def _holds(answer: str, golds: list[str]) -> float:
    return float(any(g and g in answer for g in golds))


@cache
def _simplified(text: str) -> str:
    return to_simplified(text)


_scores: dict[tuple[Any, str, tuple[str, ...]], float] = {}


def _metric(metric: Any, short: str | None, r: dict[str, Any]) -> float:
    """``metric(short, answers)``, remembered: ``fit`` asks the same ones thousands of times."""
    if short is None:
        return 0.0
    key = (metric, short, tuple(r["answers"]))
    if key not in _scores:  # the reader's span is Simplified (normalized text), DRCD's golds are not
        _scores[key] = metric(to_simplified(short), [to_simplified(g) for g in r["answers"]])
    return _scores[key]


def fit(records: list[dict[str, Any]], threshold: float) -> tuple[float, float]:
    """The "confident" gate's two margins that are right on the most questions, each counting
    once (an answerable one when its answer holds a gold answer, an unanswerable one when
    refused): above which the reader answers what the coverage gate refused (at or above the
    reader's threshold), and below which it refuses what the gate answered (or never: -inf).
    Where several margins tie, the middle one (the lower of two), as far as the grid allows from
    the questions that flip at either end; no veto where no veto ties."""
    def right(hi: float, lo: float) -> float:
        total = 0.0
        for r in records:
            a = decide(r, "confident", threshold, hi, lo)
            total += (a is None) if r["unanswerable"] else (_metric(_holds, a[1], r) if a else 0.0)
        return total

    his = [threshold] + [x / 2 for x in range(-24, 25) if x / 2 > threshold]
    los = [-math.inf] + [x / 2 for x in range(-24, 25) if x / 2 <= threshold]
    scored = {(hi, lo): right(hi, lo) for lo in los for hi in his}
    best = max(scored.values())
    tied = [m for m, v in scored.items() if v == best]
    tied_his = sorted({hi for hi, _ in tied})
    hi = tied_his[(len(tied_his) - 1) // 2]
    tied_los = sorted(lo for h, lo in tied if h == hi)
    return hi, (-math.inf if -math.inf in tied_los else tied_los[(len(tied_los) - 1) // 2])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", default="validation", choices=["validation", "tune"])
    p.add_argument("--articles", type=int, default=0, help="articles per set (default: all of the part)")
    p.add_argument("--questions", type=int, default=80, help="answerable questions per set")
    p.add_argument("--weights", type=Path, default=reader.WEIGHTS)
    p.add_argument("--fit", action="store_true", help="pick the confident gate's margins (tune part)")
    p.add_argument("--rescore", action="store_true", help="score the records of the last run again")
    args = p.parse_args(argv)
    out = OUT / f"reader_pipeline-{args.part}.json"
    docs, questions = collection(args.part, args.articles, args.questions)
    j = load_judge("reader", args.weights)
    if args.rescore:
        records = json.loads(out.read_text(encoding="utf-8"))["records"]
    else:
        index = Index.open(WORK / args.part, load_embedder("e5"))
        ingest(index, docs, prune=True)
        began = time.time()
        records = []
        for i, q in enumerate(questions):
            records.append(record(index, q, j, [d.doc_id for d in docs]))
            if (i + 1) % 50 == 0:
                print(f"{i + 1}/{len(questions)} {time.time() - began:.0f} s", flush=True)
    info_path = args.weights.with_suffix(".json")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if args.fit:
        hi, lo = fit(records, j.threshold)
        info |= {"answer above": hi, "refuse below": lo if lo > -math.inf else None,
                 "margins from": "evals/reader_pipeline.py --fit on the tune articles"}
        info_path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    hi = info.get("answer above", j.threshold)
    lo = info["refuse below"] if info.get("refuse below") is not None else -math.inf
    table = {rule: score(records, rule, j.threshold, hi, lo)
             for rule in ("off", "short", "reader", "both", "confident")}
    n = {"paragraphs": len(docs), "answerable": sum(not q["unanswerable"] for q in questions),
         "unanswerable": sum(q["unanswerable"] for q in questions)}
    report = {"part": args.part, **n, "answer above": hi, "refuse below": info.get("refuse below"),
              "rules": table, "records": records}
    OUT.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(n), f"confident: the reader answers above a margin of {hi}, refuses below {lo}")
    for rule, row in table.items():
        print(f"{rule:10}", "  ".join(f"{k} {v}" for k, v in row.items()))
    return report


if __name__ == "__main__":
    main()
