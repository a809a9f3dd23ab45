"""The pipeline end to end: answers, verified citations, refusals, scripts, input errors."""

from __future__ import annotations

import pytest

from rag.answer.generate import Draft, Evidence
from rag.errors import InputError
from rag.qa import ask, condense, stream_ask
from rag.schema import Answer, Message

QUANTUM = "秦创原量子信息科技联合创新中心将聚焦哪些领域?"


def _verified(index, answer: Answer) -> None:  # type: ignore[no-untyped-def]
    markers = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", answer.answer)}
    assert markers <= {c.n for c in answer.citations}
    for c in answer.citations:
        assert index.text(c.doc_id)[c.start:c.end] == c.quote


def test_answers_with_a_verified_citation(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, QUANTUM)
    assert not answer.refused
    for term in ("量子通信", "量子计算", "量子测量"):
        assert term in answer.answer
    _verified(seed_index, answer)
    assert any("量子通信、量子計算、量子測量" in c.quote for c in answer.citations)


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_an_input_error(seed_index, question) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError):
        ask(seed_index, question)


def test_too_long_question_and_bad_top_k(seed_index) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="limit"):
        ask(seed_index, "问" * 2001)
    with pytest.raises(InputError, match="top_k"):
        ask(seed_index, QUANTUM, top_k=0)


def test_refuses_what_the_documents_do_not_say(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, "西咸新区2023年GDP是多少?")
    assert answer.refused and not answer.citations and answer.short_answer is None
    assert "没有" in answer.answer


def test_traditional_question_gets_traditional_answer(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, "秦創原量子信息科技聯合創新中心將聚焦哪些領域?")
    assert "量子計算" in answer.answer and "量子计算" not in answer.answer
    assert "鹹" not in answer.answer  # the source's own characters, not OpenCC's guess
    _verified(seed_index, answer)


def test_short_answer_for_a_factoid(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, "咸阳市委书记是谁?")
    assert answer.short_answer == "夏晓中"


def test_stream_yields_text_then_the_answer(seed_index) -> None:  # type: ignore[no-untyped-def]
    items = list(stream_ask(seed_index, QUANTUM))
    final = items[-1]
    assert isinstance(final, Answer)
    assert "".join(i for i in items[:-1] if isinstance(i, str)) == final.answer
    refused = list(stream_ask(seed_index, "西咸新区2023年GDP是多少?"))
    assert refused[-1].refused and refused[0] == refused[-1].answer


def test_follow_up_is_condensed_with_the_previous_question() -> None:
    history = [Message(role="user", content="西咸新区党工委书记是谁?"),
               Message(role="assistant", content="杨仁华")]
    assert condense("那他的职务呢?", history).startswith("西咸新区党工委书记是谁?")
    assert condense("咸阳市委书记夏晓中强调了什么?", history) == "咸阳市委书记夏晓中强调了什么?"


class _Liar:
    """A generator that cites a passage that does not exist and one that does."""

    name = "liar"

    def generate(self, question, passages, *, idf):  # type: ignore[no-untyped-def]
        p = passages[0]
        return Draft("真的[1]。假的[9]。", [Evidence(1, p.hit.chunk.nstart, p.hit.chunk.nstart + 5),
                                         Evidence(9, 0, 5)])

    def stream(self, question, passages, *, idf):  # type: ignore[no-untyped-def]
        yield self.generate(question, passages, idf=idf)


def test_citations_to_missing_passages_are_dropped(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, QUANTUM, generator=_Liar())
    assert [c.n for c in answer.citations] == [1]
    assert "[9]" not in answer.answer and "[1]" in answer.answer
    _verified(seed_index, answer)


@pytest.mark.integration
@pytest.mark.parametrize("question, doc, words", [
    ("秦創原量子信息科技聯合創新中心將聚焦哪些領域?", "000_6326ffad47e9d9fc", "量子测量"),
    ("秦创原量子信息科技联合创新中心将聚焦哪些领域?", "000_6326ffad47e9d9fc", "量子测量"),
    ("咸阳市委书记是谁?", "002_b6fa2ad0b5cb2574", "夏晓中"),
    ("Which Peking University unit signed on to the quantum information joint innovation center?",
     "000_6326ffad47e9d9fc", "北京大学量子信息技术中心"),
])
def test_real_model_finds_the_passage(real_index, question, doc, words) -> None:  # type: ignore[no-untyped-def]
    from rag.answer.retrieve import make_query, retrieve
    from rag.text.normalize import to_simplified

    hits = retrieve(real_index, make_query(real_index, to_simplified(question)), 3)
    assert any(h.chunk.doc_id == doc and words in h.chunk.text for h in hits)


@pytest.mark.integration
def test_real_model_done_means(real_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(real_index, QUANTUM)
    assert not answer.refused and all(t in answer.answer for t in ("量子通信", "量子计算", "量子测量"))
    assert any("量子通信、量子計算、量子測量" in c.quote for c in answer.citations)
    _verified(real_index, answer)
    assert ask(real_index, "西咸新区2023年GDP是多少?").refused


def test_an_ordinal_the_passages_do_not_name_is_refused(seed_index) -> None:  # type: ignore[no-untyped-def]
    assert not ask(seed_index, "第九次国家级新区工作经验交流会是在哪里召开的?").refused
    for question in ("首届国家级新区工作经验交流会是在哪里召开的?",
                     "第十次国家级新区工作经验交流会在哪里召开?"):
        assert ask(seed_index, question).refused, question


def test_who_did_it_needs_a_passage_that_names_the_deed(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, "咸阳—西咸新区座谈交流会由谁主持?")
    assert not answer.refused and "冷劲松" in answer.answer
    # the passages name the group among those who signed, not who founded it
    assert ask(seed_index, "中电信量子信息科技集团是由谁创办的?").refused


def test_a_question_asking_for_two_things_gets_a_sentence_for_each(seed_index) -> None:  # type: ignore[no-untyped-def]
    answer = ask(seed_index, "西咸新区党工委书记和西咸新区管委会副主任分别是谁?")
    assert not answer.refused and "杨仁华" in answer.answer and "杨胜良" in answer.answer
    assert len({c.doc_id for c in answer.citations}) == 2  # one from each report
    _verified(seed_index, answer)
