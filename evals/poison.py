"""Prompt-injection flagging (``rag.text.injection``), measured: ``python -m evals.poison``.

- detection: the share of the poisoned documents of ``evals/gold/poison/docs.jsonl`` with a
  flagged sentence over their injection; collateral: their other sentences flagged. Split
  ``dev`` was written with the rules (so its figures are an upper bound); ``heldout`` after
  them, and not used to tune them;
- false positives: clean documents (notices, regulations, recipes, manuals…) with a flagged
  sentence, and the flagged sentences of the seeds and of every DRCD / CMRC dev paragraph;
- end to end: ``questions.jsonl`` asked through ``rag.qa.ask`` (extractive, the default) over
  an index of the seeds and all those documents, with the detector on and off (its patterns
  emptied, i.e. the pipeline before it): answers quoting a flagged sentence, answers holding
  the injection's payload (``must_not_include``), and correct answers (``must_include`` found,
  or refused when ``unanswerable``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from rag.ingest import ingest
from rag.ingest.documents import Document, load_documents
from rag.qa import ask
from rag.schema import Answer
from rag.store.index import Index
from rag.text import injection
from rag.text.chunk import split_sentences
from rag.text.normalize import normalize, to_simplified

__all__ = ["detector_off", "flag_original", "main", "measure_answers", "measure_corpus",
           "measure_documents"]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "evals" / "gold" / "poison"
SEEDS = ROOT / "seeds"
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def flag_original(text: str) -> list[tuple[int, int, str]]:
    """The flagged sentences of ``text`` as ``(start, end, reason)`` in the original text."""
    norm = normalize(text)
    return [(*norm.span(a, b), reason) for a, b, reason in injection.flag_sentences(norm.text)]


def _overlaps(a: int, b: int, spans: Iterable[tuple[int, int, str]]) -> bool:
    return any(s < b and a < e for s, e, _ in spans)


def measure_documents(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection on the poisoned documents, false positives on the clean ones."""
    poisoned = [d for d in docs if d["label"] == "poison"]
    clean = [d for d in docs if d["label"] == "clean"]
    missed, collateral, false_pos = [], [], []
    reasons: dict[str, int] = {}
    for d in poisoned:
        spans = flag_original(d["text"])
        a = d["text"].index(d["injection"])
        b = a + len(d["injection"])
        hits = [s for s in spans if s[0] < b and a < s[1]]
        if not hits:
            missed.append(d["id"])
        for s in hits[:1]:
            reasons[s[2]] = reasons.get(s[2], 0) + 1
        collateral += [f"{d['id']}: {d['text'][s:e]}" for s, e, _ in spans if e <= a or s >= b]
    for d in clean:
        false_pos += [f"{d['id']} ({r}): {d['text'][s:e]}" for s, e, r in flag_original(d["text"])]
    return {"poisoned": len(poisoned), "detected": len(poisoned) - len(missed), "missed": missed,
            "reasons": reasons, "collateral": collateral, "clean": len(clean),
            "clean_flagged_docs": len({x.split(" ")[0] for x in false_pos}), "false_positives": false_pos}


def measure_corpus(texts: Iterable[str]) -> dict[str, Any]:
    """Sentences and flagged sentences of ``texts`` (normalized once each)."""
    sentences, flagged = 0, []
    for text in texts:
        norm = normalize(text).text
        sentences += len(split_sentences(norm))
        flagged += [f"({r}) {norm[a:b]}" for a, b, r in injection.flag_sentences(norm)]
    return {"sentences": sentences, "flagged": flagged}


def benchmark_paragraphs(path: Path) -> list[str]:
    """Every paragraph of a SQuAD-layout file (DRCD, CMRC)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


@contextmanager
def detector_off() -> Iterator[None]:
    """The pipeline as it was before the detector: no pattern matches."""
    injection._match.cache_clear()
    try:
        with mock.patch.object(injection, "PATTERNS", []):
            yield
    finally:
        injection._match.cache_clear()


def _plain(text: str) -> str:
    return to_simplified(text).casefold()


def _quotes_flagged(index: Index, answer: Answer) -> bool:
    """Does a citation quote text the detector flags (measured with the detector on)?"""
    return any(_overlaps(c.start, c.end, flag_original(index.text(c.doc_id))) for c in answer.citations)


def measure_answers(index: Index, questions: list[dict[str, Any]], *, detector: bool = True
                    ) -> list[dict[str, Any]]:
    """Each question asked through ``rag.qa.ask`` (with the detector on or off); what its answer
    says and quotes (flagged sentences found with the detector on, either way)."""
    records = []
    for q in questions:
        if detector:
            answer = ask(index, q["question"])
        else:
            with detector_off():
                answer = ask(index, q["question"])
        said = _plain(answer.answer) + " " + _plain(answer.short_answer or "")
        correct = (answer.refused if q.get("unanswerable") else not answer.refused and all(
            any(_plain(s) in said for s in fact) for fact in q["must_include"]))
        records.append({"id": q["id"], "question": q["question"], "answer": answer.answer,
                        "refused": answer.refused, "correct": correct,
                        "leaked": [s for s in q.get("must_not_include", []) if _plain(s) in said],
                        "cited_docs": [c.doc_id for c in answer.citations],
                        "quotes_flagged": _quotes_flagged(index, answer),
                        "flagged_citations": sum(c.flagged is not None for c in answer.citations),
                        "flagged_passages": sum(p.flagged is not None for p in answer.passages)})
    return records


def build_index(directory: Path, embedder_name: str, docs: list[dict[str, Any]]) -> Index:
    from rag.models.embed import load_embedder

    index = Index.open(directory, load_embedder(embedder_name))
    ingest(index, [*load_documents([SEEDS]), *(Document.from_text(d["id"], d["text"]) for d in docs)])
    return index


def _summary(records: list[dict[str, Any]]) -> dict[str, int]:
    return {"questions": len(records), "quotes_flagged": sum(r["quotes_flagged"] for r in records),
            "leaked": sum(bool(r["leaked"]) for r in records), "correct": sum(r["correct"] for r in records),
            "refused": sum(r["refused"] for r in records)}


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "n/a"


def format_table(result: dict[str, Any]) -> str:
    lines = ["| set | measure | value |", "|---|---|---|"]
    for split, docs in result["documents"].items():
        lines += [f"| poisoned ({split}) | injections detected | "
                  f"{_pct(docs['detected'], docs['poisoned'])} |",
                  f"| poisoned ({split}) | other sentences flagged | {len(docs['collateral'])} |",
                  f"| clean ({split}) | documents with a flagged sentence | "
                  f"{_pct(docs['clean_flagged_docs'], docs['clean'])} |"]
    for name, corpus in result["corpora"].items():
        lines.append(f"| {name} | sentences flagged | {_pct(len(corpus['flagged']), corpus['sentences'])} |")
    for mode, s in result.get("answers", {}).items():
        n = s["questions"]
        row = f"| end to end, detector {mode} |"
        lines += [f"{row} answers quoting a flagged sentence | {_pct(s['quotes_flagged'], n)} |",
                  f"{row} answers holding the injected payload | {_pct(s['leaked'], n)} |",
                  f"{row} correct (refused when unanswerable) | {_pct(s['correct'], n)} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end questions (no embedder)")
    ap.add_argument("--embedder", default="e5")
    ap.add_argument("--out", type=Path, help="write the full results (JSON) here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    docs = load_jsonl(DATA / "docs.jsonl")
    splits = dict.fromkeys(d["split"] for d in docs)
    result: dict[str, Any] = {"documents": {s: measure_documents([d for d in docs if d["split"] == s])
                                            for s in splits}, "corpora": {}}
    seeds = (p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*")))
    result["corpora"]["seeds"] = measure_corpus(seeds)
    for name, file in (("DRCD dev", "drcd_dev.json"), ("CMRC dev", "cmrc2018_dev.json")):
        if (BENCHMARKS / file).is_file():
            result["corpora"][name] = measure_corpus(benchmark_paragraphs(BENCHMARKS / file))
    if not args.no_e2e:
        questions = load_jsonl(DATA / "questions.jsonl")
        with tempfile.TemporaryDirectory() as tmp:
            index = build_index(Path(tmp) / "index", args.embedder, docs)
            before = measure_answers(index, questions, detector=False)
            after = measure_answers(index, questions)
        result["answers"] = {"off": _summary(before), "on": _summary(after)}
        result["records"] = {"off": before, "on": after}
    print(format_table(result))
    listed = [(f"{what} ({s})", d[key]) for s, d in result["documents"].items()
              for what, key in (("missed", "missed"), ("collateral", "collateral"),
                                ("clean false positives", "false_positives"))]
    for label, items in (*listed, *((f"{n} flagged", c["flagged"]) for n, c in result["corpora"].items())):
        if items:
            print(f"\n{label}:\n" + "\n".join(f"  {x}" for x in items[:20]))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
