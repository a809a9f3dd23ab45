"""Scoring the reader's refusal rules from pipeline records (evals/reader_pipeline.py)."""

from __future__ import annotations

import math
from typing import Any

from evals.reader_pipeline import decide, fit, score


def rec(gate: bool, margin: float, unanswerable: bool = False, form: str = "question",
        right: bool = True, quoted: float | None = None) -> dict[str, Any]:
    """A record; ``quoted``: the reader's margin over the passages the gate's answer quotes."""
    gold = "夏晓中"
    span = gold if right else "冷劲松"
    return {"question": "咸阳市委书记是谁?", "gate": gate, "margin": margin,
            "quoted_margin": (margin if quoted is None else quoted) if gate else None,
            "quoted_span": gold if gate else "", "unanswerable": unanswerable, "form": form,
            "answers": [gold], "span": span, "reader_answer": f"咸阳市委书记{span}出席。",
            "short": None, "answer": f"咸阳市委书记{gold}出席。" if gate else None}


def test_confident_overrules_only_a_refusal_and_only_beyond_its_margin() -> None:
    t, hi = 1.0, 5.0
    assert decide(rec(False, 6.0), "confident", t, hi) == ("夏晓中", "咸阳市委书记夏晓中出席。")
    assert decide(rec(False, 4.0), "confident", t, hi) is None  # unsure: the gate refused
    assert decide(rec(True, -4.0), "confident", t, hi) == (None, "咸阳市委书记夏晓中出席。")  # as short
    assert decide(rec(True, 2.0), "confident", t, hi) == ("夏晓中", "咸阳市委书记夏晓中出席。")


def test_confident_refuses_below_its_veto_margin_over_the_quoted_passages() -> None:
    t, hi = 1.0, 5.0
    assert decide(rec(True, 8.0, quoted=-6.0), "confident", t, hi, -4.0) is None
    kept = decide(rec(True, -8.0, quoted=-3.0), "confident", t, hi, -4.0)
    assert kept == (None, "咸阳市委书记夏晓中出席。")
    assert decide(rec(True, 8.0, quoted=-6.0), "short", t, hi, -4.0) is not None  # short never refuses
    english = rec(True, 8.0, quoted=-6.0) | {"question": "Who chaired it?"}
    assert decide(english, "confident", t, hi, -4.0) is not None  # left to the coverage gate
    two = rec(True, 8.0, quoted=-6.0) | {"quoted_passages": 2}
    assert decide(two, "confident", t, hi, -4.0) is not None  # an answer from two passages


def test_confident_leads_with_the_reader_s_sentence_where_the_answer_does_not_quote_its_span() -> None:
    t, hi, lo = 1.0, 5.0, -4.0
    led = "咸阳市委书记夏晓中出席。市长冷劲松主持。"
    outside = rec(True, 2.0) | {"led_answer": led, "answer": "市长冷劲松主持。"}
    assert decide(outside, "confident", t, hi, lo) == ("夏晓中", led)
    assert decide(outside, "short", t, hi, lo)[1] == "市长冷劲松主持。"  # "short" never leads
    assert decide(outside | {"margin": 0.5}, "confident", t, hi, lo)[1] == "市长冷劲松主持。"  # unsure
    vetoed = outside | {"quoted_margin": -6.0}
    assert decide(vetoed, "confident", t, hi, lo) is None  # the answer goes; the reader not sure enough
    assert decide(vetoed | {"margin": 6.0}, "confident", t, hi, lo) == ("夏晓中", "咸阳市委书记夏晓中出席。")


def test_confident_overrules_only_a_refusal_for_too_few_shared_words() -> None:
    assert decide(rec(False, 9.0), "confident", 1.0, 5.0) is not None
    assert decide(rec(False, 9.0) | {"checked": False}, "confident", 1.0, 5.0) is None  # 第十次


def test_score_counts_answers_by_their_text_and_refusals() -> None:
    records = [rec(True, 3.0), rec(True, 3.0, form="keyword", right=False),
               rec(False, 9.0, unanswerable=True), rec(False, -9.0, unanswerable=True)]
    s = score(records, "off", 1.0)
    assert s["question right %"] == 100.0 and s["keyword right %"] == 100.0  # the gate's answer holds it
    assert s["keyword F1"] == 0.0 and s["unanswerable refused %"] == 100.0
    s = score(records, "reader", 1.0)
    assert s["question right %"] == 100.0 and s["keyword right %"] == 0.0
    assert s["unanswerable refused %"] == 50.0
    assert "keyword unanswerable refused %" not in s  # none asked


def test_score_and_fit_count_keyword_form_refusals_apart() -> None:
    records = [rec(False, 7.0), rec(False, 7.0, form="keyword"),
               rec(False, 3.0, unanswerable=True), rec(False, 6.0, unanswerable=True, form="keyword")]
    s = score(records, "reader", 1.0)
    assert s["unanswerable refused %"] == 0.0 and s["keyword unanswerable refused %"] == 0.0
    s = score(records, "reader", 4.0)
    assert s["unanswerable refused %"] == 100.0 and s["keyword unanswerable refused %"] == 0.0
    hi, _ = fit(records, 1.0)
    assert 6.0 <= hi < 7.0  # refusing the keyword form too costs no answer


def test_fit_answers_above_the_unanswerable_margins_and_refuses_below_the_answerable() -> None:
    records = ([rec(False, 7.0)] * 5 + [rec(False, 3.0, unanswerable=True)] * 5
               + [rec(True, -1.0)] * 5 + [rec(True, -2.0, quoted=-6.0, unanswerable=True)] * 3)
    hi, lo = fit(records, 1.0)
    assert 3.0 <= hi < 7.0 and -6.0 < lo <= -1.0
    hi, lo = fit(records[:15], 1.0)
    assert lo == -math.inf  # nothing to refuse: no veto


def test_every_question_is_asked_in_both_forms_unanswerable_ones_too() -> None:
    from evals.reader_pipeline import _forms

    q = {"question": "咸阳市委书记是谁?", "form": "question", "unanswerable": True}
    asked = _forms(q)
    assert [a["form"] for a in asked] == ["question", "keyword"]
    assert asked[1]["question"] == "咸阳市委书记" and asked[1]["unanswerable"]
    assert _forms(q | {"question": "咸阳市委书记"}) == [q | {"question": "咸阳市委书记"}]  # no question words


def test_fit_picks_the_middle_of_tied_margins() -> None:
    records = [rec(True, -1.0), rec(True, -2.0, quoted=-7.0, unanswerable=True)]
    _, lo = fit(records, 1.0)  # any veto in (-7, -1] refuses the one and keeps the other
    assert -5.0 <= lo <= -3.0
