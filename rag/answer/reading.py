"""The reader stage: a trained model reads the question with the top passages and says whether
one of them answers it, and where (``rag.models.reader``).

Word overlap tells whether a passage is *about* the question; the reader tells whether it
*answers* it. ``verdicts`` gives a ``Verdict`` per passage and ``Readings`` the best of the
passages asked about (the first ``depth``, or those an answer quotes), each read once: a span
(offsets in the passage's document, normalized text, like ``Evidence``) and its margin over
"no answer"; answerable when the margin clears the threshold chosen on held-out articles when the
model was trained (``rag/models/reader.json``).

How the verdict is used (``Judge.gate``):
- ``reader``: the reader alone decides refusal (the coverage gate in ``rag.qa`` is skipped);
- ``both``: answer only when the coverage gate and the reader agree;
- ``span``: refusal stays the gate's; the reader picks the answer span and its sentence;
- ``short``: refusal and the answer stay the extractive pipeline's; the reader's span becomes the
  short answer when the answer quotes the sentence holding it (the answer text is unchanged);
- ``confident`` (the default): where the coverage gate refuses for too few shared words, the
  reader reads the top passages and answers (its span's sentence) when its margin is above
  ``answer_above``. Where the gate answers, the reader first reads the passages the extractive
  answer quotes; when its span lies there, it is the short answer. Otherwise it reads the top
  passages too: when it finds an answer in a sentence the answer does not quote, that sentence
  leads and the extractive answer follows (``rag.answer.extract.lead``). When the one passage
  quoted has a margin below ``refuse_below``, the extractive answer goes: refused, unless the
  reader is sure (above ``answer_above``) of another top passage, whose sentence is the answer.
  With an LLM generator the reader reads the top passages before any text is generated: it
  refuses when all score below ``refuse_below``, and offers its span to the prompt
  (``Passage.found``). Both margins are fitted on held-out articles (``evals.reader_pipeline
  --fit``) and kept in reader.json (``refuse below`` null: never). English questions stay the
  gate's: the reader never saw one in training.
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

__all__ = ["GATES", "Judge", "Readings", "Verdict", "best", "load_judge", "reader_available", "verdicts"]

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


def verdicts(j: Judge, question: str, passages: Sequence[Passage]) -> list[Verdict]:
    """One verdict per passage (its best span and margin), all read in one batch."""
    from rag.models import reader

    if not passages:
        return []
    out = []
    for r in reader.read(question, [p.text for p in passages], j.model):
        p = passages[r.passage]
        base = p.hit.chunk.nstart
        out.append(Verdict(p.n, base + r.start, base + r.end, r.margin,
                           r.margin > j.threshold and r.end > r.start))
    return out


def best(found: Sequence[Verdict]) -> Verdict | None:
    """The verdict with the highest margin (the first of equals), or None."""
    return max(found, key=lambda v: v.margin, default=None)


class Readings:
    """The reader's verdicts on one question's passages: each passage is read once."""

    def __init__(self, j: Judge, question: str) -> None:
        self.j, self.question = j, question
        self.found: dict[int, Verdict] = {}  # passage number -> its verdict

    def best(self, passages: Sequence[Passage]) -> Verdict | None:
        """The best verdict over ``passages``, reading those not read yet in one batch."""
        unread = [p for p in passages if p.n not in self.found]
        if unread:
            self.found |= {v.n: v for v in verdicts(self.j, self.question, unread)}
        return best([self.found[p.n] for p in passages])
