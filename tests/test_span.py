"""Short answers: candidate features, the fitted scorer, and the fitting script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evals.span_fit import examples, fit, score
from rag.answer.span import WEIGHTS, candidates, short_span


def test_every_candidate_has_exactly_the_weighted_features() -> None:
    found = candidates("咸阳市委书记是谁?", "咸阳市委书记夏晓中,西咸新区党工委书记杨仁华")
    assert found and all(set(f) == set(WEIGHTS) for _, _, f in found)


@pytest.mark.parametrize(("question", "sentence", "expected"), [
    ("咸阳市委书记是谁?", "咸阳市委书记夏晓中,西咸新区党工委书记杨仁华出席。", "夏晓中"),
    ("第九次交流会在哪里召开?", "国家发展改革委在福州新区召开第九次交流会。", "福州新区"),
    ("中华民国政府撤退至台湾于西元几年?", "1949年,中华民国政府撤退至台湾。", "1949年"),
])
def test_short_answers(question: str, sentence: str, expected: str) -> None:
    span = short_span(question, sentence)
    assert span and sentence[span[0]:span[1]] == expected


def test_no_short_answer_for_lists_or_unrelated_sentences() -> None:
    assert short_span("会议聚焦了哪些领域?", "会议聚焦了科技创新、产业协同。") is None
    assert short_span("咸阳市委书记是谁?", "今天天气很好。") is None


def test_fitting_learns_to_pick_the_answer(tmp_path: Path) -> None:
    qas = [("咸阳市委书记是谁?", "咸阳市委书记夏晓中,市长冷劲松出席。", "夏晓中"),
           ("西咸新区党工委书记是谁?", "西咸新区党工委书记杨仁华,管委会主任姜建春出席。", "杨仁华"),
           ("会议在哪个城市召开?", "来自各地的代表出席,会议在福州召开。", "福州")]
    data = {"data": [{"paragraphs": [
        {"id": f"p{i}", "context": ctx, "qas": [{"id": f"q{i}", "question": q,
                                                "answers": [{"text": a, "answer_start": ctx.find(a)}]}]}
        for i, (q, ctx, a) in enumerate(qas)]}]}
    file = tmp_path / "tiny.json"
    file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    found, total = examples(file)
    assert total == 3 and len(found) == 3
    w = fit(found, steps=200)
    assert score(found, total, w) == pytest.approx(1.0)
    assert score(found, total, w) >= score(found, total, np.zeros_like(w))
