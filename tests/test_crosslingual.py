"""English questions over Chinese text: the CC-CEDICT bridge (real dictionary, real BM25)."""

from __future__ import annotations

import pytest

from rag.answer.extract import _matched_run
from rag.answer.retrieve import make_query
from rag.qa import ask
from rag.store.index import Index
from rag.text.crosslingual import _slot, _syllables, _valid_syllables, _words, bridge
from rag.text.lexical import Lexicon, coverage, occurs, tokenize
from rag.text.normalize import has_cjk

TEXTS = ["西咸新区党工委书记杨仁华出席会议并讲话。", "福州新区召开第九次国家级新区工作经验交流会。",
         "秦创原量子信息科技联合创新中心将聚焦量子通信、量子计算等领域。"]


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon([tokenize(t) for t in TEXTS])


def test_pinyin_is_cut_every_way() -> None:
    cuts = _syllables("xianyang", _valid_syllables())
    assert ["xian", "yang"] in cuts and ["xi", "an", "yang"] in cuts
    assert _syllables("secretary", _valid_syllables()) == []


def test_words_become_chinese_alternatives_and_names_are_found_by_pinyin(lexicon: Lexicon) -> None:
    weights = bridge("Who is the Party Secretary of Xixian? What did Yang Renhua say?", lexicon, TEXTS)
    keys = list(weights)
    assert any("书记" in k.split("|") for k in keys)
    assert "西咸" in keys and "杨仁华" in keys  # names: pinyin matched against the passages
    assert coverage(TEXTS[0], weights) > 0.8
    assert coverage(TEXTS[2], weights) < 0.3


def test_phrases_win_over_single_words(lexicon: Lexicon) -> None:
    weights = bridge("Which quantum communication fields?", lexicon, TEXTS)
    assert "量子" in weights and any("通信" in k for k in weights)


def test_a_word_the_collection_lacks_counts_against_the_passage(lexicon: Lexicon) -> None:
    weights = bridge("What was the weather in Fuzhou?", lexicon, TEXTS)
    weather = next(k for k in weights if "天气" in k.split("|"))
    assert weights[weather] == pytest.approx(lexicon.unseen_idf)
    assert coverage(TEXTS[1], weights) < 0.6  # 福州 is there, the weather is not


@pytest.mark.parametrize(("question", "slot"), [
    ("Which four development strategies did Yang Shengliang say Xixian would adhere to?",
     ["four", "strategies"]),
    ("On what date was the symposium held?", ["date"]),
    ("What was the weather like in Fuzhou?", []),  # "what" asks; it names no kind of answer
    ("Which Peking University unit signed on?", []),  # no auxiliary closes the phrase
])
def test_the_head_noun_of_which_what_is_the_answer_slot(question: str, slot: list[str]) -> None:
    words = _words(question)
    assert [words[i] for i in sorted(_slot(words))] == slot


def test_a_slot_word_does_not_count_against_the_passage(lexicon: Lexicon) -> None:
    weights = bridge("Which fields did the quantum center focus on?", lexicon, TEXTS)
    (fields,) = weights.slot
    assert "领域" in fields.split("|")
    without = "量子中心将聚焦量子通信。"  # no word for "fields": that is not held against it
    assert coverage(without, weights) == 1.0
    assert coverage("量子中心将开展研究。", weights) < 1.0  # "focus" still counts


def test_a_meeting_written_with_a_modifier_inside_its_name_is_found(lexicon: Lexicon) -> None:
    texts = [*TEXTS, "6月8日上午,咸阳—西咸新区座谈交流会在咸阳市召开。"]
    weights = bridge("When was the Xianyang symposium held?", lexicon, texts)
    # 座谈…会 in the passage: the form it is written in is the alternative
    symposium = next(k for k in weights if "座谈交流会" in k.split("|"))
    assert occurs(symposium, texts[-1]) and coverage(texts[-1], weights) == 1.0
    assert "经验交流会" not in symposium  # 交流会 is no symposium


def test_nothing_to_bridge_is_empty(lexicon: Lexicon) -> None:
    assert bridge("What is it?", lexicon, TEXTS) == {}
    assert not has_cjk("Fuzhou") and has_cjk("福州")


def test_an_english_question_retrieves_and_answers_from_chinese(seed_index: Index) -> None:
    query = make_query(seed_index, "Who is the Party Secretary of the Xixian New Area?")
    assert query.bridged and any("书记" in t for t in query.tokens)
    answer = ask(seed_index, "Which four strategies did Yang Shengliang say Xixian New Area "
                             "would persist in?")
    assert not answer.refused and "科技兴区" in answer.answer
    assert ask(seed_index, "What was the weather like in Fuzhou in November?").refused


def test_chinese_questions_are_not_bridged(seed_index: Index) -> None:
    assert not make_query(seed_index, "西咸新区党工委书记是谁?").bridged


def test_matched_words_in_a_row_are_measured() -> None:
    weights = {"书记|秘书": 1.0, "西咸": 1.0, "新区": 1.0, "工委": 1.0}
    assert _matched_run("西咸新区党工委书记杨仁华", weights) == 4  # 西咸新区; 党 is not matched
    assert _matched_run("咸阳市委副书记郭柱国", weights) == 2


@pytest.mark.integration
def test_the_sentence_where_the_translations_stand_together_wins(real_index: Index) -> None:
    # 副书记 in one sentence, 党工委委员 in another: only 西咸新区党工委书记杨仁华 has them in a row
    answer = ask(real_index, "Who is the Party Secretary of the Xixian New Area Party Working "
                             "Committee?")
    assert not answer.refused and "杨仁华" in answer.answer.split("[")[0]
