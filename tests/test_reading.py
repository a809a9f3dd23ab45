"""The reader stage in the pipeline (rag.answer.reading + rag.qa), with the model faked at its seam
(``rag.models.reader.read``): which gate refuses, and the reader's span leading the answer."""

from __future__ import annotations

import json

import pytest

from rag.answer.reading import Judge, Readings, load_judge
from rag.errors import ConfigError, ModelError
from rag.models import reader
from rag.qa import ask, stream_ask
from rag.schema import Answer

QUESTION = "咸阳市委书记是谁?"


def fake_read(span: str | None, margin: float):  # type: ignore[no-untyped-def]
    """A reader that finds ``span`` in the first passage holding it (or nothing)."""
    def read(question, passages, model=None, **_):  # type: ignore[no-untyped-def]
        out = []
        for i, text in enumerate(passages):
            at = text.find(span) if span else -1
            if at >= 0:
                out.append(reader.Reading(i, at, at + len(span), span, margin, 0.0))
            else:
                out.append(reader.Reading(i, 0, 0, "", -5.0, 0.0))
        return out
    return read


def test_the_span_and_its_sentence_lead(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", 4.0))
    answer = ask(seed_index, QUESTION, reader=Judge(None, 0.5, "reader"))
    assert not answer.refused and answer.short_answer == "夏晓中"
    first = answer.citations[0]
    assert "夏曉中" in first.quote and seed_index.text(first.doc_id)[first.start:first.end] == first.quote
    assert "read" in answer.timings_ms


@pytest.mark.parametrize(("gate", "refused"), [("reader", True), ("both", True), ("span", False),
                                              ("short", False)])
def test_which_gate_refuses(seed_index, monkeypatch, gate, refused) -> None:  # type: ignore[no-untyped-def]
    """The reader finds nothing: "reader" and "both" refuse; "span" leaves refusal to the gate
    (which answers this question) and the extractive answer stands."""
    monkeypatch.setattr(reader, "read", fake_read(None, 0.0))
    answer = ask(seed_index, QUESTION, reader=Judge(None, 0.5, gate))
    assert answer.refused is refused


def test_short_gate_only_gives_the_short_answer(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """"short": the answer and refusal are the extractive pipeline's; the reader's span becomes
    the short answer when the answer quotes it, and is ignored when it does not."""
    plain = ask(seed_index, QUESTION)
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", 4.0))
    short = ask(seed_index, QUESTION, reader=Judge(None, 0.5, "short"))
    assert short.answer == plain.answer and short.refused is plain.refused is False
    assert short.short_answer == "夏晓中"
    monkeypatch.setattr(reader, "read", fake_read("西咸新区", 4.0))  # a span the answer does not quote
    outside = ask(seed_index, QUESTION, reader=Judge(None, 0.5, "short"))
    assert outside.answer == plain.answer and outside.short_answer == plain.short_answer


def test_reader_gate_answers_what_the_coverage_gate_refuses(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    question = "西咸新区2023年GDP是多少?"  # the coverage gate refuses it
    assert ask(seed_index, question).refused
    monkeypatch.setattr(reader, "read", fake_read("西咸新区", 3.0))
    assert not ask(seed_index, question, reader=Judge(None, 0.5, "reader")).refused
    assert ask(seed_index, question, reader=Judge(None, 0.5, "both")).refused


@pytest.mark.parametrize(("margin", "refused_unsupported"), [
    (6.0, False),  # sure it answers: answers what the coverage gate refuses
    (1.0, True),  # answerable, but not sure enough to overrule the gate
    (-3.0, True),
])
def test_confident_gate_overrules_a_refusal_only_when_sure(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch, margin, refused_unsupported) -> None:
    j = Judge(None, 0.5, "confident", answer_above=5.0)
    unsupported = "西咸新区2023年GDP是多少?"  # the coverage gate refuses it, answers QUESTION
    monkeypatch.setattr(reader, "read", fake_read("西咸新区", margin))
    answer = ask(seed_index, unsupported, reader=j)
    assert answer.refused is refused_unsupported
    assert answer.refused or answer.short_answer == "西咸新区"
    plain = ask(seed_index, QUESTION)
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", margin))
    answer = ask(seed_index, QUESTION, reader=j)  # what the gate answers stays answered, as "short"
    assert not answer.refused and answer.answer == plain.answer
    assert answer.short_answer == ("夏晓中" if margin > 0.5 else plain.short_answer)


def test_confident_gate_never_overrules_a_refusal_for_what_the_question_s_form_demands(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch) -> None:
    monkeypatch.setattr(reader, "read", fake_read("11月18日至19日", 9.0))  # sure, of the 9th meeting
    j = Judge(None, 0.5, "confident", answer_above=5.0)
    assert ask(seed_index, "第十次国家级新区工作经验交流会何时举行?", reader=j).refused  # the 10th
    assert not ask(seed_index, "第九次国家级新区工作经验交流会何时举行?", reader=j).refused


@pytest.mark.parametrize(("margin", "refused"), [(-6.0, True), (-1.0, False), (3.0, False)])
def test_confident_gate_refuses_what_the_quoted_passages_do_not_answer(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch, margin, refused) -> None:
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", margin))
    j = Judge(None, 0.5, "confident", answer_above=5.0, refuse_below=-3.0)
    answer = ask(seed_index, QUESTION, reader=j)  # the coverage gate answers it
    assert answer.refused is refused
    assert answer.refused or answer.citations
    streamed = list(stream_ask(seed_index, QUESTION, reader=j))[-1]
    assert isinstance(streamed, Answer) and streamed.refused is refused
    never = Judge(None, 0.5, "confident", answer_above=5.0)  # reader.json's "refuse below": null
    assert not ask(seed_index, QUESTION, reader=never).refused


def read_by_span(margins: dict[str, float]):  # type: ignore[no-untyped-def]
    """A reader that, in each passage, finds the first of ``margins``' spans it holds, at its margin."""
    def read(question, passages, model=None, **_):  # type: ignore[no-untyped-def]
        out = []
        for i, text in enumerate(passages):
            found = [(span, m) for span, m in margins.items() if span in text]
            span, m = found[0] if found else ("", -9.0)
            at = text.find(span) if span else 0
            out.append(reader.Reading(i, at, at + len(span), span, m, 0.0))
        return out
    return read


def test_confident_gate_leads_with_the_reader_s_sentence_when_the_answer_does_not_quote_it(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch) -> None:
    """The reader finds its span outside the sentences the extractive answer quotes: its sentence
    leads, the extractive answer follows, the span is the short answer, every quote is verbatim."""
    plain = ask(seed_index, QUESTION)
    monkeypatch.setattr(reader, "read", fake_read("西咸新区", 4.0))  # (the "short" test: not quoted)
    answer = ask(seed_index, QUESTION, reader=Judge(None, 0.5, "confident", answer_above=5.0))
    assert not answer.refused and answer.short_answer == "西咸新区"
    assert answer.answer != plain.answer and answer.answer.endswith(plain.answer)
    assert "西咸新" in answer.citations[0].quote  # (the original: 西咸新區(qū), pinyin and all)
    assert len(answer.citations) > len(plain.citations)
    for c in answer.citations:
        assert seed_index.text(c.doc_id)[c.start:c.end] == c.quote
    streamed = list(stream_ask(seed_index, QUESTION, reader=Judge(None, 0.5, "confident", answer_above=5.0)))
    assert isinstance(streamed[-1], Answer) and streamed[-1].answer == answer.answer
    monkeypatch.setattr(reader, "read", fake_read("西咸新区", 0.2))  # below its threshold: no lead
    assert ask(seed_index, QUESTION, reader=Judge(None, 0.5, "confident")).answer == plain.answer


@pytest.mark.parametrize(("elsewhere", "refused"), [(6.0, False), (4.0, True)])
def test_confident_gate_s_veto_leaves_the_reader_s_own_sentence_when_it_is_sure(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch, elsewhere, refused) -> None:
    """The one passage the extractive answer quotes does not answer (margin below the veto); a top
    passage the reader is sure of (above ``answer_above``) does: its sentence alone is the answer."""
    plain = ask(seed_index, QUESTION)
    monkeypatch.setattr(reader, "read", read_by_span({"夏晓中": -6.0, "西咸新区": elsewhere}))
    j = Judge(None, 0.5, "confident", answer_above=5.0, refuse_below=-3.0)
    answer = ask(seed_index, QUESTION, reader=j)
    assert answer.refused is refused
    if not refused:
        assert answer.short_answer == "西咸新区" and not answer.answer.endswith(plain.answer)


def test_confident_gate_leaves_english_questions_to_the_coverage_gate(  # type: ignore[no-untyped-def]
        seed_index, monkeypatch) -> None:
    monkeypatch.setattr(reader, "read", fake_read("GDP", 9.0))  # sure, but of an English question
    j = Judge(None, 0.5, "confident", answer_above=5.0, refuse_below=-3.0)
    english = "What was Xixian New Area's GDP in 2023?"
    assert ask(seed_index, english).refused
    assert ask(seed_index, english, reader=j).refused
    answered = "Who is the Party Secretary of Xianyang?"  # nor refuses one the gate answers
    monkeypatch.setattr(reader, "read", fake_read(None, -9.0))
    assert not ask(seed_index, answered).refused and not ask(seed_index, answered, reader=j).refused


def test_stream_gives_the_same_answer(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", 4.0))
    j = Judge(None, 0.5, "reader")
    *deltas, final = list(stream_ask(seed_index, QUESTION, reader=j))
    assert isinstance(final, Answer) and final.short_answer == "夏晓中"
    assert "".join(deltas) == final.answer == ask(seed_index, QUESTION, reader=j).answer


def test_verdict_offsets_are_the_document_s(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", 4.0))
    from rag.answer.draft import Passage
    from rag.answer.retrieve import make_query, retrieve

    hits = retrieve(seed_index, make_query(seed_index, QUESTION), 5)
    passages = [Passage(i + 1, h, seed_index.normalized(h.chunk.doc_id)) for i, h in enumerate(hits)]
    j = Judge(None, 0.5)
    v = Readings(j, QUESTION).best(passages[:j.depth])
    assert v is not None and v.answerable
    assert passages[v.n - 1].doc.text[v.nstart:v.nend] == "夏晓中"


def test_load_judge_says_how_to_get_the_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="RAG_READER"):
        load_judge("sometimes")
    with pytest.raises(ModelError, match="make reader"):
        load_judge("reader", tmp_path / "reader.safetensors")
    (tmp_path / "reader.safetensors").write_bytes(b"")
    (tmp_path / "reader.json").write_text(json.dumps({"format": "int8"}))
    with pytest.raises(ModelError, match="threshold"):
        load_judge("reader", tmp_path / "reader.safetensors")


@pytest.mark.parametrize("margin", [4.0, -6.0])
def test_an_llm_gets_the_reader_s_span_or_no_call_at_all(seed_index, monkeypatch, margin) -> None:  # type: ignore[no-untyped-def]
    """With an LLM generator the reader reads before any text is generated: it offers its span in
    the prompt, or, sure no top passage answers (below the veto), refuses without calling it."""
    from tests.test_llm import Scripted

    llm = Scripted("咸阳市委书记夏晓中出席并讲话[1]。\n简答：夏晓中")
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", margin))
    j = Judge(None, 0.5, "confident", answer_above=5.0, refuse_below=-3.0)
    answer = ask(seed_index, QUESTION, generator=llm, reader=j)
    if margin < 0:
        assert answer.refused and llm.sent == []
        return
    prompt = llm.sent[0][-1]["content"]
    assert "答案片段：“夏晓中”" in prompt and prompt.index("答案片段") > prompt.rindex("</资料>")
    streamed = list(stream_ask(seed_index, QUESTION, generator=Scripted("夏晓中[1]。"), reader=j))
    assert isinstance(streamed[-1], Answer)
    unsure = Scripted("夏晓中[1]。")
    monkeypatch.setattr(reader, "read", fake_read("夏晓中", 0.2))  # below the threshold: no hint
    ask(seed_index, QUESTION, generator=unsure, reader=j)
    assert "答案片段" not in unsure.sent[0][-1]["content"]


def test_the_server_warms_the_reader_before_serving(seed_index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Its first forward pass is the slow one: startup makes it, not the first asker."""
    from server.app import _warm

    calls = []

    def read(question, passages, model=None, **_):  # type: ignore[no-untyped-def]
        calls.append(question)
        return fake_read(None, 0.0)(question, passages, model)

    monkeypatch.setattr(reader, "read", read)
    _warm(seed_index, Judge(None, 0.5, "confident"))
    assert calls
