"""Fit ``rag.answer.span.WEIGHTS``, the short-answer scorer, on a SQuAD-layout set; score it on others.

For every question, the first sentence of its gold paragraph that holds a gold answer is given
(so retrieval plays no part); ``rag.answer.span.candidates`` lists the candidate spans and their
features. The weights maximise the likelihood of the best candidates (softmax over each
question's candidates; the target is every candidate with the highest char-F1), by full-batch
gradient descent with a little L2. Prints the ``WEIGHTS`` to paste into ``rag/answer/span.py`` and the
char-F1 on every set, with the weights that ship and with the fitted ones::

    python -m evals.span_fit ../shared/benchmarks/cmrc2018_dev.json ../shared/benchmarks/drcd_dev.json
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.bench import load_squad
from evals.metrics import f1
from rag.answer import span
from rag.text.chunk import split_sentences
from rag.text.normalize import to_simplified

__all__ = ["Example", "examples", "fit", "score"]

NAMES = list(span.WEIGHTS)


@dataclass(frozen=True)
class Example:
    features: np.ndarray  # candidates × features
    f1: np.ndarray  # char-F1 of each candidate


def examples(file: Path) -> tuple[list[Example], int]:
    """The questions of ``file`` that have candidates, and how many questions there are."""
    docs, questions = load_squad(file)
    texts = {d.doc_id: to_simplified(d.text) for d in docs}
    out = []
    for q in questions:
        golds = [to_simplified(a) for a in q["answers"]]
        text = texts[q["gold_paragraph"]]
        sentence = next((text[a:b] for a, b in split_sentences(text)
                         if any(g and g in text[a:b] for g in golds)), None)
        if sentence is None:
            continue
        if found := span.candidates(to_simplified(q["question"]), sentence):
            out.append(Example(np.array([[f[n] for n in NAMES] for _, _, f in found]),
                               np.array([f1(sentence[a:b], golds) for a, b, _ in found])))
    return out, len(questions)


def fit(data: list[Example], *, steps: int = 300, rate: float = 0.5, l2: float = 1e-3) -> np.ndarray:
    usable = [e for e in data if e.f1.max() > 0]
    w = np.zeros(len(NAMES))
    for _ in range(steps):
        grad = np.zeros_like(w)
        for e in usable:
            z = e.features @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            target = (e.f1 == e.f1.max()).astype(float)
            grad += e.features.T @ (p - target / target.sum())
        w -= rate * (grad / len(usable) + l2 * w)
    return w


def score(data: list[Example], total: int, w: np.ndarray) -> float:
    """Mean char-F1 over all ``total`` questions (none picked scores 0)."""
    return sum(float(e.f1[int(np.argmax(e.features @ w))]) for e in data) / total


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.span_fit", description=__doc__.split("\n")[0])
    parser.add_argument("train", type=Path)
    parser.add_argument("held_out", type=Path, nargs="*")
    args = parser.parse_args()
    sets = {f: examples(f) for f in [args.train, *args.held_out]}
    w = fit(sets[args.train][0])
    shipped = np.array([span.WEIGHTS[n] for n in NAMES])
    print("WEIGHTS = {")
    print("\n".join(f'    "{n}": {v:.2f},' for n, v in zip(NAMES, w, strict=True)))
    print("}")
    for f, (data, total) in sets.items():
        role = "fitted on" if f == args.train else "held out"
        print(f"{f.name} ({role}): char-F1 {score(data, total, shipped):.4f} with the shipped "
              f"weights, {score(data, total, w):.4f} with these")


if __name__ == "__main__":
    main()
