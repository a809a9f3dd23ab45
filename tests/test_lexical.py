"""Question weights and coverage: what a passage must repeat to answer (real jieba, real BM25)."""

from __future__ import annotations

import pytest

from rag.text.lexical import Lexicon, Weights, agent_verb, answer_slot, coverage, question_weights, tokenize

TEXTS = ["本次签约旨在落实《国家级新区高质量建设行动计划》。",
         "西安交通大学、西北工业大学、西安电子科技大学参与签约。",
         "咸阳和西咸新区是难分彼此的“一家人”。"]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon([tokenize(t) for t in TEXTS])


def weigh(lexicon: Lexicon, question: str) -> Weights:
    return question_weights(lexicon, tokenize(question), question)


@pytest.mark.parametrize(("question", "slot", "not_slot"), [
    ("杨胜良说本次签约是为了落实哪份文件?", {"份文件"}, {"签约", "落实"}),
    ("参与签约的西安本地高校有哪几所?", {"高校"}, {"西安", "签约"}),
    ("哪两位通报了有关工作?", {"两位"}, {"通报"}),
    ("哪五家国家级新区开展合作?", {"五家", "国家级"}, {"合作"}),
    ("这次会议是怎样的平台?", {"平台"}, {"会议"}),
    ("座谈交流会由谁主持?", {"谁"}, {"主持"}),  # 谁 names no noun after it
    ("咸阳市委书记是谁?", {"谁"}, {"市委书记"}),  # the role must match: it is no slot
])
def test_the_answer_slot_is_the_wh_word_and_the_noun_it_asks_for(question: str, slot: set[str],
                                                                 not_slot: set[str]) -> None:
    found = answer_slot(question)
    assert slot <= found and not (not_slot & found)


def test_a_slot_word_counts_when_present_and_never_against(lexicon: Lexicon) -> None:
    weights = weigh(lexicon, "杨胜良说本次签约是为了落实哪份文件?")
    assert "文件" in weights.slot and "签约" not in weights.slot
    plain = dict(weights)  # the same words, none of them a slot
    assert coverage(TEXTS[0], weights) > coverage(TEXTS[0], plain)
    assert coverage("杨胜良说本次签约旨在落实文件。", weights) == 1.0
    # missing non-slot words still count against: "杨胜良" is not in the passage
    assert coverage(TEXTS[0], weights) < 1.0


def test_frame_words_pronouns_and_jieba_glue_weigh_nothing(lexicon: Lexicon) -> None:
    weights = weigh(lexicon, "夏晓中提到推进务实合作时要聚焦的是什么?")
    assert "时要" not in weights and "要" not in weights  # 时要: jieba glued 时 + 要
    assert "聚焦" in weights
    assert "之前" in weigh(lexicon, "冷劲松担任市长之前担任过什么职务?")  # a word of its own
    relation = weigh(lexicon, "如何形容咸阳和西咸新区之间的关系?")
    assert not {"之间", "关系"} & set(relation) and coverage(TEXTS[2], relation) == 1.0
    assert "它" not in weigh(lexicon, "它在秦创原中被称为什么?")


@pytest.mark.parametrize(("question", "verb"), [
    ("中电信量子信息科技集团是由谁创办的?", "创办"),
    ("中国大陆的铁路路徽最初是由哪一个人所设计的?", "设计"),  # past 一个, 人 and 所
    ("穆德洛斯停战协定是由哪些国家签订的?", "签订"),
    ("其中一部分在蒙古独立时被哪国占去?", "占去"),
    ("元朝被何人所灭?", None),  # one character (灭): too loose to look for
    ("高句丽人被谁编进辽西郡?", None),  # 编进 is jieba's HMM guess, no dictionary word
    ("座谈交流会在哪里召开?", None),  # not asked who did it
    ("谁主持了座谈交流会?", None),
])
def test_the_deed_of_a_who_did_it_question(question: str, verb: str | None) -> None:
    assert agent_verb(question) == verb
