"""CI floor on the seeds gold set with the real bundled model: a regression fails the build.

Floors sit just under the figures measured when they were set (README, "Measured"); raise them
as the pipeline improves, never lower them to make a change pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.harness import run_gold
from rag.store.index import Index

GOLD = Path(__file__).resolve().parent.parent / "evals" / "gold" / "seeds.jsonl"
HELD_OUT = GOLD.with_name("seeds_heldout.jsonl")
HELD_OUT_2 = GOLD.with_name("seeds_heldout2.jsonl")
FLOORS = {
    "accuracy": 0.98,  # measured 1.0 (the deed of 由谁 questions, 怎样的X filled, 座谈…会 for "symposium")
    "refusal_recall": 0.99,  # measured 1.0 (all 15 unanswerable refused)
    "refusal_precision": 0.99,  # measured 1.0 (no answerable question refused)
    "hit@5": 0.97,  # measured 0.975
}


# 12 questions written after the rules were frozen and never tuned on: how the gate generalizes
HELD_OUT_FLOORS = {
    "accuracy": 0.58,  # measured 0.583 (7 of 12)
    "refusal_recall": 0.33,  # measured 0.333 (2 of 6 unanswerable refused)
    "refusal_precision": 0.66,  # measured 0.667 (one answerable question refused)
}


# 16 keyword-style, paraphrased and unanswerable questions written before the 3rd reader stage
HELD_OUT_2_FLOORS = {
    "accuracy": 0.75,  # measured 0.75 (12 of 16), reader off
    "refusal_recall": 0.8,  # measured 0.8 (4 of 5 unanswerable refused)
}


@pytest.mark.integration
def test_seeds_gold_set_stays_above_its_floor(real_index: Index, tmp_path: Path) -> None:
    summary = run_gold(real_index, GOLD, out_json=tmp_path / "seeds.json")
    got = {k: summary[k] for k in FLOORS}
    assert not summary["errors"]
    low = {k: v for k, v in got.items() if v is None or v < FLOORS[k]}
    assert not low, f"below the floor: {low} (floors {FLOORS})"


@pytest.mark.integration
@pytest.mark.parametrize(("gold", "floors"), [(HELD_OUT, HELD_OUT_FLOORS), (HELD_OUT_2, HELD_OUT_2_FLOORS)],
                         ids=["held-out", "held-out-2"])
def test_held_out_questions_stay_above_their_floor(real_index: Index, tmp_path: Path, gold: Path,
                                                    floors: dict[str, float]) -> None:
    summary = run_gold(real_index, gold, out_json=tmp_path / "heldout.json")
    low = {k: summary[k] for k in floors if summary[k] is None or summary[k] < floors[k]}
    assert not summary["errors"] and not low, f"below the floor: {low} (floors {floors})"
