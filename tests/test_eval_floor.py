"""CI floor on the seeds gold set with the real bundled model: a regression fails the build.

Floors sit just under the figures measured when they were set (README, "Measured"); raise them
as the pipeline improves, never lower them to make a change pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.harness import run_gold
from rag.index import Index

GOLD = Path(__file__).resolve().parent.parent / "evals" / "gold" / "seeds.jsonl"
FLOORS = {
    "accuracy": 0.82,  # measured 0.832 (English questions bridged through CC-CEDICT)
    "refusal_recall": 0.86,  # measured 0.867 (13 of 15 unanswerable refused)
    "hit@5": 0.94,  # measured 0.950
}


@pytest.mark.integration
def test_seeds_gold_set_stays_above_its_floor(real_index: Index, tmp_path: Path) -> None:
    summary = run_gold(real_index, GOLD, out_json=tmp_path / "seeds.json")
    got = {"accuracy": summary["accuracy"], "refusal_recall": summary["refusal_recall"],
           "hit@5": summary["hit@5"]}
    assert not summary["errors"]
    low = {k: v for k, v in got.items() if v is None or v < FLOORS[k]}
    assert not low, f"below the floor: {low} (floors {FLOORS})"
