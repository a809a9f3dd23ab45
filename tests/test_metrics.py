"""evals.metrics on hand-made cases: every expected value below is worked out by hand."""

from __future__ import annotations

import doctest
import math

import pytest

from evals import metrics as m


def test_doctests() -> None:
    assert doctest.testmod(m).failed == 0


@pytest.mark.parametrize(("relevance", "first", "hit1", "hit3", "rr"), [
    ([True, False, False], 1, True, True, 1.0),
    ([False, False, True], 3, False, True, 1 / 3),
    ([False, True, True], 2, False, True, 0.5),
    ([False, False, False], None, False, False, 0.0),
    ([], None, False, False, 0.0),
])
def test_ranking(relevance: list[bool], first: int | None, hit1: bool, hit3: bool,
                 rr: float) -> None:
    assert m.first_relevant(relevance) == first
    assert m.hit_at(relevance, 1) is hit1
    assert m.hit_at(relevance, 3) is hit3
    assert m.reciprocal_rank(relevance) == pytest.approx(rr)


def test_hit_at_k_only_looks_at_the_first_k() -> None:
    assert not m.hit_at([False, False, False, False, False, True], 5)
    assert m.hit_at([False, False, False, False, False, True], 6)


def test_mrr_is_the_mean_of_reciprocal_ranks() -> None:
    queries = [[True], [False, True], [False, False, False, True], [False]]
    assert m.mean(m.reciprocal_rank(q) for q in queries) == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)


def test_ndcg() -> None:
    assert m.ndcg_at([True, True, False, False], 4) == 1.0  # a perfect ranking scores 1.0
    assert m.ndcg_at([True], 5) == 1.0
    assert m.ndcg_at([False, False], 2) == 0.0
    # one relevant at rank 3: 1/log2(4) over the ideal 1/log2(2)
    assert m.ndcg_at([False, False, True], 3) == pytest.approx(0.5)
    # relevant at ranks 1 and 3, ideal ranks 1 and 2
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m.ndcg_at([True, False, True], 3) == pytest.approx(expected)
    # a relevant item the list missed still counts in the ideal
    assert m.ndcg_at([True, False], 2, n_relevant=2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # beyond k nothing counts
    assert m.ndcg_at([False, False, True], 2) == 0.0


def test_percentile_and_mean() -> None:
    assert m.percentile([], 50) is None
    assert m.percentile([7.0], 95) == 7.0
    assert m.percentile([3, 1, 2], 50) == 2.0  # unsorted input
    assert m.percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)  # numpy's linear rule
    assert m.percentile([1, 2, 3, 4], 0) == 1.0
    with pytest.raises(ValueError):
        m.percentile([1.0], 101)
    assert m.mean([]) is None
    assert m.mean([True, False, True, True]) == 0.75


def test_refusal_scores() -> None:
    # refused: q1 (unanswerable), q2 (answerable: a false refusal); q3 unanswerable not refused
    got = m.refusal_scores([True, True, False, False], [True, False, True, False])
    assert got == {"precision": 0.5, "recall": 0.5, "false_refusals": 1}
    assert m.refusal_scores([False, False], [False, False]) == {
        "precision": None, "recall": None, "false_refusals": 0}
    assert m.refusal_scores([True], [True]) == {"precision": 1.0, "recall": 1.0,
                                                "false_refusals": 0}
    with pytest.raises(ValueError):
        m.refusal_scores([True], [True, False])


def test_facts_present() -> None:
    facts = [["福州新区", "福州"], ["11月18日"]]
    assert m.facts_present("11月18日在福州召开", facts)
    assert not m.facts_present("在福州召开", facts)  # the date fact is missing
    assert m.facts_present("anything", [])  # nothing required
    assert not m.facts_present("abc", [[""]])  # an empty spelling never matches


def test_strip_markers_keeps_the_digits_of_the_text() -> None:
    assert m.strip_markers("共签约14份[1][2]。") == "共签约14份。"
    assert not m.facts_present(m.strip_markers("见[1]"), [["1"]])


def test_cmrc_em() -> None:
    assert m.em("北京", ["北京"]) == 1.0
    assert m.em("《北京》。", ["北京"]) == 1.0  # punctuation dropped
    assert m.em(" 北 京 ", ["北京"]) == 1.0  # spaces dropped
    assert m.em("北京市", ["北京"]) == 0.0
    assert m.em("上海", ["北京", "上海"]) == 1.0  # any gold answer
    assert m.em(None, ["北京"]) == 0.0
    assert m.em("ABC", ["abc"]) == 1.0  # lower-cased


def test_cmrc_f1() -> None:
    assert m.f1("北京", ["北京"]) == 1.0
    assert m.f1(None, ["北京"]) == 0.0
    assert m.f1("", ["北京"]) == 0.0
    assert m.f1("上海", ["北京"]) == 0.0
    # prediction 北京大学 (4), gold 北京 (2): common 2 → P=0.5 R=1 → F1=2/3
    assert m.f1("北京大学", ["北京"]) == pytest.approx(2 / 3)
    # the max over gold answers
    assert m.f1("北京大学", ["上海", "北京大学"]) == 1.0
    # longest common SUBSTRING, not subsequence: 甲乙丙丁 vs 甲丙: runs of length 1 → P=1/4 R=1/2
    assert m.f1("甲乙丙丁", ["甲丙"]) == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    # Latin runs are words: "1786年" → ["1786", "年"]; "1786" vs gold "1786年2月" (5 tokens)
    assert m.cmrc_tokens("1786年2月") == ["1786", "年", "2", "月"]
    assert m.f1("1786", ["1786年2月"]) == pytest.approx(2 * 1 * 0.25 / 1.25)
    # punctuation never counts: 「威廉·瓊斯」 equals 威廉瓊斯
    assert m.f1("「威廉·瓊斯」", ["威廉·瓊斯"]) == 1.0


def test_contains_any() -> None:
    assert m.contains_any("答案是歐洲。", ["歐洲"])
    assert not m.contains_any("答案是亞洲。", ["歐洲", ""])
