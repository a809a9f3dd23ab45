"""The reader's validation table: spans, no-answer decisions, keyword vs question forms.

    python -m evals.reader_eval [--weights rag/models/reader.safetensors] [--limit N] [--data DIR]

The no-answer threshold (on span score - null score) is chosen on the "tune" articles, carved out
of TRAIN and never trained on; every figure of the table comes from the validation articles.
Their no-answer paragraphs are read twice: with the question, and with its keyword form.
Writes evals/out/reader.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evals import reader_data
from evals.metrics import em, f1
from rag.models import reader
from rag.models.inference import load_network

OUT = Path(__file__).resolve().parent / "out" / "reader.json"


def read_all(model: Any, examples: list[reader_data.Example], max_len: int) -> list[reader.Reading]:
    return [reader.read(e.question, [e.context], model, max_len=max_len)[0] for e in examples]


def limited(examples: list[reader_data.Example], limit: int) -> list[reader_data.Example]:
    """``limit`` questions spread over both sets (all their examples: gold, negative, keyword), or all."""
    if not limit:
        return examples
    ids = list(dict.fromkeys(e.qid.split(":")[0] for e in examples))
    keep = ids[::max(1, len(ids) // limit)][:limit]
    chosen = set(keep)
    return [e for e in examples if e.qid.split(":")[0] in chosen]


def keyword_negatives(examples: list[reader_data.Example]) -> list[reader_data.Example]:
    """The no-answer examples asked in keyword form too (the data's are all question-form)."""
    negatives = [e for e in examples if e.start is None and e.form == "question"]
    asked = [(e, reader_data.keyword_variant(e.question)) for e in negatives]
    return examples + [replace(e, question=keyword, form="keyword") for e, keyword in asked if keyword]


def pick_threshold(examples: list[reader_data.Example], readings: list[reader.Reading]) -> float:
    """The margin that best balances answering answerable examples and refusing the others."""
    margins = np.array([r.margin for r in readings])
    answerable = np.array([e.start is not None for e in examples])
    best, best_t = -1.0, 0.0
    for t in np.unique(margins):
        answered = margins > t - 1e-9
        score = answered[answerable].mean() + (~answered[~answerable]).mean()
        if score > best:
            best, best_t = score, float(t) - 1e-6
    return best_t


def percent(flags: list[bool] | list[float]) -> float:
    return 100 * float(np.mean(flags)) if flags else float("nan")


def table(examples: list[reader_data.Example], readings: list[reader.Reading],
          threshold: float) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    pairs_all = list(zip(examples, readings, strict=True))
    for form in ("question", "keyword"):
        pairs = [(e, r) for e, r in pairs_all if e.form == form and e.start is not None]
        answered = [r.margin > threshold for _, r in pairs]
        exact = [em(r.text, e.answers) for e, r in pairs]
        rows[f"answerable, {form} form"] = {
            "n": len(pairs), "span EM": percent(exact),
            "span F1": percent([f1(r.text, e.answers) for e, r in pairs]),
            "answered %": percent(answered),
            "accuracy % (answered, exact)": percent([a and x == 1
                                                     for a, x in zip(answered, exact, strict=True)]),
        }
    for form, name in (("question", "no answer (retrieved non-gold paragraph)"),
                       ("keyword", "no answer, keyword form")):
        negatives = [r for e, r in pairs_all if e.start is None and e.form == form]
        if negatives:
            refused = [r.margin <= threshold for r in negatives]
            rows[name] = {"n": len(negatives), "refused %": percent(refused)}
    everything = [r.margin > threshold for r in readings]
    rows["all examples"] = {"n": len(readings), "answered %": percent(everything),
                            "refused %": 100 - percent(everything)}
    return rows


def ab_formats(trained: Any, shipped: Any, examples: list[reader_data.Example], max_len: int,
               threshold: float) -> dict[str, float]:
    """The trained float model against the shipped (quantized) file, on the same examples."""
    a, b = read_all(trained, examples, max_len), read_all(shipped, examples, max_len)
    gold = [(e, x, y) for e, x, y in zip(examples, a, b, strict=True) if e.start is not None]
    return {"n": len(examples),
            "F1 float": percent([f1(x.text, e.answers) for e, x, _ in gold]),
            "F1 shipped": percent([f1(y.text, e.answers) for e, _, y in gold]),
            "same span %": percent([x.text == y.text for x, y in zip(a, b, strict=True)]),
            "same decision %": percent([(x.margin > threshold) == (y.margin > threshold)
                                        for x, y in zip(a, b, strict=True)]),
            "max |margin diff|": float(max(abs(x.margin - y.margin) for x, y in zip(a, b, strict=True)))}


def print_table(rows: dict[str, Any]) -> None:
    for name, row in rows.items():
        cells = "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        print(f"{name:<42} {cells}")


def main(argv: list[str] | None = None, trained: Any = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m evals.reader_eval")
    p.add_argument("--weights", default=str(reader.WEIGHTS))
    p.add_argument("--limit", type=int, default=0, help="questions per part (0: all)")
    p.add_argument("--data", default=str(reader_data.BENCHMARKS), help="benchmarks folder")
    p.add_argument("--ab", type=int, default=50, help="questions in the float vs shipped A/B (with trained)")
    args = p.parse_args(argv)
    from safetensors import safe_open

    with safe_open(args.weights, "np") as f:
        meta = json.loads(f.metadata()["reader"])
    max_len = reader.MAX_LEN  # read as the pipeline will, whatever the training windows were
    model = load_network(Path(args.weights))
    began = time.monotonic()
    data = Path(args.data)
    tune = limited(reader_data.cached_examples("tune", 1.0, reader_data.WORK, data), args.limit)
    threshold = pick_threshold(tune, read_all(model, tune, max_len))
    validation = limited(reader_data.cached_examples("validation", 1.0, reader_data.WORK, data), args.limit)
    validation = keyword_negatives(validation)
    readings = read_all(model, validation, max_len)
    rows = table(validation, readings, threshold)
    report: dict[str, Any] = {"weights": Path(args.weights).name, "format": meta.get("format"),
                              "threshold (margin, from tune)": threshold, "tune examples": len(tune),
                              "validation": rows, "eval minutes": (time.monotonic() - began) / 60}
    if trained is not None and args.ab:
        report["float vs shipped A/B (validation)"] = ab_formats(trained, model, limited(validation, args.ab),
                                                                 max_len, threshold)
    print(f"threshold {threshold:.3f} (chosen on {len(tune)} tune examples)")
    info_path = Path(args.weights).with_suffix(".json")  # the pipeline's judge reads it there
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info["threshold"] = threshold
        info_path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print_table(rows)
    if "float vs shipped A/B (validation)" in report:
        print_table({"float vs shipped": report["float vs shipped A/B (validation)"]})
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
