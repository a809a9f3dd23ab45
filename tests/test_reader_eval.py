"""The reader's validation table (evals/reader_eval.py), on made-up readings."""

from __future__ import annotations

from evals.reader_data import Example
from evals.reader_eval import keyword_negatives, table
from rag.models.reader import Reading


def example(question: str, answer: bool, form: str = "question") -> Example:
    context = "会议在福州举行。"
    return Example("q1", "drcd:1", question, context, 3 if answer else None, 5 if answer else None,
                   ["福州"], form)


def test_no_answer_paragraphs_are_asked_in_keyword_form_too() -> None:
    examples = [example("会议在哪里举行?", True), example("会议在哪里举行?", False)]
    out = keyword_negatives(examples)
    assert out[:2] == examples and len(out) == 3
    assert out[2].question == "会议在举行" and out[2].form == "keyword" and out[2].start is None
    assert keyword_negatives([example("会议地点", False)]) == [example("会议地点", False)]  # nothing dropped


def test_table_reports_refusals_per_form() -> None:
    examples = keyword_negatives([example("会议在哪里举行?", True), example("会议在哪里举行?", False)])
    readings = [Reading(0, 3, 5, "福州", 5.0, 0.0), Reading(0, 3, 5, "福州", -1.0, 0.0),
                Reading(0, 3, 5, "福州", 2.0, 0.0)]
    rows = table(examples, readings, 1.0)
    assert rows["answerable, question form"]["span EM"] == 100.0
    assert rows["no answer (retrieved non-gold paragraph)"]["refused %"] == 100.0
    assert rows["no answer, keyword form"]["refused %"] == 0.0
