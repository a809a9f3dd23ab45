"""The reader stage: a trained model reads the question with the top passages and says whether
one of them answers it, and where (``rag.models.reader``).

Word overlap tells whether a passage is *about* the question; the reader tells whether it
*answers* it. ``judge`` reads the first ``depth`` passages and returns a ``Verdict``: the best
span over them (offsets in the passage's document, normalized text, like ``Evidence``) and its
margin over "no answer"; answerable when the margin clears the threshold chosen on held-out
articles when the model was trained (``rag/models/reader.json``).

How the verdict is used (``Judge.gate``):
- ``reader``: the reader alone decides refusal (the coverage gate in ``rag.qa`` is skipped);
- ``both``: answer only when the coverage gate and the reader agree;
- ``span``: refusal stays the gate's; the reader picks the answer span and its sentence;
- ``short``: refusal and the answer stay the extractive pipeline's; the reader's span becomes the
  short answer when the answer quotes the sentence holding it (the answer text is unchanged);
- ``confident``: as ``short``, but where the coverage gate refuses, the reader reads the top
  passages and answers (its span's sentence leads) when its margin is above ``answer_above``;
  where the gate answers and the reader, reading the passages the answer quotes, finds no answer
  there (margin below ``refuse_below``), it refuses. Both margins are fitted on held-out articles
  (``evals.reader_pipeline --fit``) and kept in reader.json (``refuse below`` null: never).
  English questions stay the gate's: the reader never saw one in training.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.answer.draft import Passage
from rag.errors import ConfigError, ModelError

__all__ = ["GATES", "Judge", "Verdict", "judge", "load_judge", "reader_available"]

GATES = ("reader", "both", "span", "short", "confident")
DEPTH = 3  # passages read: the answer is in the top 3 for 0.99 of DRCD's answerable questions


@dataclass(frozen=True)
class Verdict:
    n: int  # passage number (1-based, as in Evidence)
    nstart: int
    nend: int
    margin: float  # best span score minus the no-answer score
    answerable: bool


@dataclass(frozen=True)
class Judge:
    model: Any
    threshold: float
    gate: str = "reader"
    depth: int = DEPTH
    answer_above: float = 0.0  # the "confident" gate's margins (see the module's docstring)
    refuse_below: float = -math.inf

    def overrules(self, verdict: Verdict | None) -> bool:
        """The "confident" gate: is the reader sure enough to answer what the coverage gate refused?"""
        return bool(verdict and verdict.margin > self.answer_above and verdict.nend > verdict.nstart)

    def vetoes(self, verdict: Verdict | None) -> bool:
        """The "confident" gate: is the reader sure the passages an answer quotes do not answer?"""
        return self.gate == "confident" and verdict is not None and verdict.margin < self.refuse_below


def load_judge(gate: str = "reader", path: Path | None = None) -> Judge:
    """The shipped reader, or ``ModelError`` naming how to build it. Every call (each request,
    through ``bootstrap.make_judge``) shares one loaded model and reads no file again."""
    if gate not in GATES:
        raise ConfigError(f"RAG_READER={gate!r}: use off, {', '.join(GATES)}")
    from rag.models import reader

    model, info = _weights(path or reader.WEIGHTS)
    threshold = float(info["threshold"])
    below = info.get("refuse below")
    return Judge(model, threshold, gate, answer_above=float(info.get("answer above", threshold)),
                 refuse_below=-math.inf if below is None else float(below))


@lru_cache(maxsize=2)
def _weights(weights: Path) -> tuple[Any, dict[str, Any]]:
    """The model at ``weights`` and what reader.json says of it (loaded once per file)."""
    from rag.models.inference import load_network

    if not weights.is_file():
        raise ModelError(f"the reader's weights are not in {weights}: train them with `make reader`"
                         " (or set RAG_READER=off)")
    info = json.loads(weights.with_suffix(".json").read_text(encoding="utf-8"))
    if "sha256" in info and _sha256(weights) != info["sha256"]:
        raise ModelError(f"{weights} does not match the checksum in {weights.with_suffix('.json')}:"
                         " the file is damaged or from another run (reinstall, or `make reader`)")
    if "threshold" not in info:
        raise ModelError(f"{weights.with_suffix('.json')} has no threshold: rerun its evaluation"
                         " (python -m evals.reader_eval)")
    return load_network(weights), info


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reader_available() -> bool:
    """Are the reader's weights (and their threshold) in place?"""
    from rag.models import reader

    info = reader.WEIGHTS.with_suffix(".json")
    return reader.WEIGHTS.is_file() and info.is_file() and "threshold" in info.read_text(encoding="utf-8")


def judge(j: Judge, question: str, passages: Sequence[Passage]) -> Verdict | None:
    """The best span of the first ``j.depth`` passages, or None when there are none."""
    from rag.models import reader

    read = list(passages[:j.depth])
    if not read:
        return None
    readings = reader.read(question, [p.text for p in read], j.model)
    best = max(readings, key=lambda r: r.margin)
    p = read[best.passage]
    base = p.hit.chunk.nstart
    return Verdict(p.n, base + best.start, base + best.end, best.margin,
                   best.margin > j.threshold and best.end > best.start)
