"""Scoring the reader's refusal rules from pipeline records (evals/reader_pipeline.py)."""

from __future__ import annotations

from typing import Any

from evals.reader_pipeline import decide, fit, score


def rec(gate: bool, margin: float, unanswerable: bool = False, form: str = "question",
        right: bool = True) -> dict[str, Any]:
    gold = "夏晓中"
    span = gold if right else "冷劲松"
    return {"gate": gate, "margin": margin, "unanswerable": unanswerable, "form": form,
            "answers": [gold], "span": span, "reader_answer": f"咸阳市委书记{span}出席。",
            "short": None, "answer": f"咸阳市委书记{gold}出席。" if gate else None}


def test_confident_overrules_the_gate_only_beyond_its_margins() -> None:
    t, lo, hi = 1.0, -3.0, 5.0
    assert decide(rec(False, 6.0), "confident", t, lo, hi) == ("夏晓中", "咸阳市委书记夏晓中出席。")
    assert decide(rec(False, 4.0), "confident", t, lo, hi) is None  # unsure: the gate refused
    assert decide(rec(True, -4.0), "confident", t, lo, hi) is None  # sure there is none
    short, answer = decide(rec(True, 2.0), "confident", t, lo, hi)  # type: ignore[misc]
    assert short == "夏晓中" and answer == "咸阳市委书记夏晓中出席。"  # the gate's answer, the reader's span
    assert decide(rec(True, 0.0), "confident", t, lo, hi) == (None, "咸阳市委书记夏晓中出席。")


def test_score_counts_answers_by_their_text_and_refusals() -> None:
    records = [rec(True, 3.0), rec(True, 3.0, form="keyword", right=False),
               rec(False, 9.0, unanswerable=True), rec(False, -9.0, unanswerable=True)]
    s = score(records, "off", 1.0)
    assert s["question right %"] == 100.0 and s["keyword right %"] == 100.0  # the gate's answer holds it
    assert s["keyword F1"] == 0.0 and s["unanswerable refused %"] == 100.0
    s = score(records, "reader", 1.0)
    assert s["question right %"] == 100.0 and s["keyword right %"] == 0.0
    assert s["unanswerable refused %"] == 50.0


def test_fit_keeps_the_margins_either_side_of_the_threshold() -> None:
    records = ([rec(False, 7.0)] * 5 + [rec(False, 3.0, unanswerable=True)] * 5
               + [rec(True, -1.0)] * 5 + [rec(True, -8.0, unanswerable=True)] * 2)
    lo, hi = fit(records, 1.0)
    assert lo <= 1.0 <= hi
    assert -8.0 < lo <= -1.0 and 3.0 <= hi < 7.0
