"""Sentence ranking of the extractive generator, on hand-made passages."""

from __future__ import annotations

from rag.answer.extract import _filled, rank_sentences
from rag.answer.generate import Passage
from rag.answer.retrieve import Hit
from rag.text.chunk import Chunk
from rag.text.lexical import Lexicon, question_weights, tokenize
from rag.text.normalize import normalize


def _passages(*texts: str) -> list[Passage]:
    out = []
    for n, text in enumerate(texts, 1):
        doc = normalize(text)
        chunk = Chunk(f"d{n}", 0, doc.text, 0, len(text), 0, len(doc.text))
        out.append(Passage(n, Hit(n, chunk, 0.5, 0.5, 1.0), doc))
    return out


def _best(question: str, *texts: str) -> str:
    weights = question_weights(Lexicon([tokenize(t) for t in texts]), tokenize(question), question)
    return rank_sentences(_passages(*texts), weights, question)[0].text


def test_the_sentence_that_says_which_one_wins_over_one_that_mentions_it() -> None:
    vague = "新区将认真学习贯彻习近平总书记来陕考察重要讲话重要指示精神。"
    says = "新区始终牢记习近平总书记“发挥新区作为试验区的综合功能”的重要指示。"
    question = "习近平总书记对新区作出了怎样的重要指示?"
    assert _best(question, vague, says) == says
    assert _best(question, says, vague) == says  # not the retrieval order


def test_the_sentence_with_the_kind_of_value_asked_for_wins() -> None:
    assert _best("会议在哪一年召开?", "会议在咸阳召开。", "会议于2022年召开。") == "会议于2022年召开。"


def test_a_title_right_before_the_name_answers_a_role_question() -> None:
    question = "杨仁华担任什么职务?"
    titled = "西咸新区党工委书记杨仁华出席会议。"
    assert _best(question, "杨仁华出席会议并讲话。", titled) == titled


def test_a_filled_slot_is_found_past_a_bare_mention() -> None:
    assert _filled("重要指示写进了会议的重要指示", "重要指示")  # the second one follows 的
    assert not _filled("重要指示精神", "重要指示") and not _filled("学习重要指示精神", "重要指示")
    assert _filled("牢记“发挥综合功能”的重要指示", "重要指示")


def test_lead_puts_the_reader_s_sentence_first_and_quotes_each_sentence_once(seed_index) -> None:  # type: ignore[no-untyped-def]
    from rag.answer.draft import Evidence, Passage
    from rag.answer.extract import Extractive, from_span, lead
    from rag.answer.retrieve import make_query, retrieve

    question = "咸阳市委书记是谁?"
    query = make_query(seed_index, question)
    hits = retrieve(seed_index, query, 5)
    passages = [Passage(i + 1, h, seed_index.normalized(h.chunk.doc_id)) for i, h in enumerate(hits)]
    draft = Extractive().generate(question, passages, idf=query.weights)
    at = passages[1].doc.text.index("西咸新区", passages[1].hit.chunk.nstart)
    first = from_span(passages, Evidence(2, at, at + 4))
    assert first is not None
    led = lead(first, draft, passages)
    assert led.evidence[:len(first.evidence)] == first.evidence and led.short_answer == first.short_answer
    assert led.text.startswith(first.text) and led.text.endswith(draft.text) and led.quoted
    assert lead(first, first, passages).text == first.text  # nothing quoted twice
