"""rag.text.chunk: sentence splitting and chunk packing, with offsets into both texts."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.ingest.documents import load_documents
from rag.text.chunk import Chunk, chunk_document, split_sentences
from rag.text.normalize import Normalized, normalize

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_DOCS = load_documents([SEEDS])


def _pieces(text: str, max_len: int = 10_000) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text, max_len)]


# ---- split_sentences --------------------------------------------------------------------------
def test_split_chinese_terminators() -> None:
    assert _pieces("你好。再见！真的吗？是的；好…结束") == [
        "你好。", "再见！", "真的吗？", "是的；", "好…", "结束"]


def test_split_keeps_closing_quotes_with_their_sentence() -> None:
    assert _pieces("他说：“你好。”她走了。") == ["他说：“你好。”", "她走了。"]
    assert _pieces("「好吗？」『好！』") == ["「好吗？」", "『好！』"]


def test_split_runs_of_terminators_stay_together() -> None:
    assert _pieces("真的吗？！是的……好") == ["真的吗？！", "是的……", "好"]


def test_split_english_periods_only_before_whitespace() -> None:
    assert _pieces("Hello world. Pi is 3.14 today. Bye") == ["Hello world.", "Pi is 3.14 today.", "Bye"]
    assert _pieces("version 1.2.3 and e.g.x") == ["version 1.2.3 and e.g.x"]
    assert _pieces('He said "stop." Then left.') == ['He said "stop."', "Then left."]


def test_split_newlines_and_blank_pieces() -> None:
    assert _pieces("第一行\n第二行\n\n  \n第三行\n") == ["第一行", "第二行", "第三行"]
    assert split_sentences("") == []
    assert split_sentences(" \n \n") == []


def test_split_spans_are_trimmed_and_ordered() -> None:
    text = "  甲。  乙！\n 丙 "
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["甲。", "乙！", "丙"]
    assert all(a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in pairwise(spans))


def test_split_long_sentence_cut_at_commas_then_hard() -> None:
    text = "甲" * 8 + "，" + "乙" * 8 + "，" + "丙" * 3
    assert _pieces(text, max_len=10) == ["甲" * 8 + "，", "乙" * 8 + "，", "丙" * 3]
    assert _pieces("丁" * 25, max_len=10) == ["丁" * 10, "丁" * 10, "丁" * 5]


# ---- chunk_document ---------------------------------------------------------------------------
def _check_chunks(original: str, norm: Normalized, chunks: list[Chunk], size: int) -> None:
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == norm.text[c.nstart:c.nend]
        assert 0 <= c.start < c.end <= len(original)
        assert 0 <= c.nstart < c.nend <= len(norm.text)
        assert len(c.text) <= size
        # every normalized character of the chunk comes from inside its original span
        assert all(c.start <= norm.origin[i] < c.end for i in range(c.nstart, c.nend))
        assert c.chunk_id == f"{c.doc_id}#{c.ordinal}"
    # chunks advance through the text and cover every sentence
    assert all(a.nstart < b.nstart for a, b in pairwise(chunks))
    for a, b in split_sentences(norm.text, max_len=size):
        assert any(c.nstart <= a and b <= c.nend for c in chunks), norm.text[a:b]


@pytest.mark.parametrize("doc", SEED_DOCS, ids=lambda d: d.doc_id)
@pytest.mark.parametrize("size", [60, 240, 500])
def test_seed_chunks(doc, size: int) -> None:  # type: ignore[no-untyped-def]
    norm = normalize(doc.text)
    chunks = chunk_document(doc.doc_id, norm, size=size, overlap=1)
    assert len(chunks) >= 2
    _check_chunks(doc.text, norm, chunks, size)
    for c in chunks:
        quoted = doc.text[c.start:c.end]
        assert normalize(quoted).text == c.text
        assert c.doc_id == doc.doc_id


def test_overlap_one_shares_a_sentence() -> None:
    text = "".join(f"第{i}句话在这里。" for i in range(20))
    norm = normalize(text)
    chunks = chunk_document("d", norm, size=40, overlap=1)
    assert len(chunks) > 3
    _check_chunks(text, norm, chunks, 40)
    for a, b in pairwise(chunks):
        last = split_sentences(a.text)[-1]
        assert b.text.startswith(a.text[last[0]:last[1]])
        assert b.nstart < a.nend


def test_overlap_zero_shares_nothing() -> None:
    text = "".join(f"第{i}句话在这里。" for i in range(20))
    norm = normalize(text)
    chunks = chunk_document("d", norm, size=40, overlap=0)
    _check_chunks(text, norm, chunks, 40)
    for a, b in pairwise(chunks):
        assert b.nstart >= a.nend
    assert "".join(c.text for c in chunks) == norm.text


def test_single_long_sentence_is_cut_to_size() -> None:
    text = "这是一个没有标点的很长的句子" * 20
    norm = normalize(text)
    chunks = chunk_document("d", norm, size=50, overlap=1)
    _check_chunks(text, norm, chunks, 50)
    assert "".join(c.text for c in chunks) == norm.text


def test_chunk_offsets_point_into_the_original() -> None:
    text = ("瀏覽次數(shù):次\n國家發(fā)展改革委在福州新區(qū)召開會議。"
            "西咸新區(qū)簽約。\n×\n秦創(chuàng)原落戶。")
    norm = normalize(text)
    chunks = chunk_document("d", norm, size=20, overlap=0)
    assert [c.text for c in chunks] == ["国家发展改革委在福州新区召开会议。", "西咸新区签约。\n秦创原落户。"]
    assert text[chunks[0].start:chunks[0].end] == "國家發(fā)展改革委在福州新區(qū)召開會議。"
    assert text[chunks[1].start:chunks[1].end] == "西咸新區(qū)簽約。\n×\n秦創(chuàng)原落戶。"
    for c in chunks:
        assert normalize(text[c.start:c.end]).text == c.text


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document("d", normalize(""), size=100) == []
    assert chunk_document("d", normalize("  \n ×\n"), size=100) == []


# ---- property test ----------------------------------------------------------------------------
_PIECES = st.sampled_from([
    "。", "！", "？", "；", "…", "”", "，", "、", ". ", "3.14", "\n", "\n\n", " ", "\t",
    "(qū)", "(市)", "區", "發", "國", "陜", "ＡＢ", "abc", "Hello world", "\u3000",
])
_TEXT = st.lists(st.one_of(_PIECES, st.characters(codec="ascii"), st.characters()), max_size=120).map(
    "".join
)


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT, st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2))
def test_chunk_property(text: str, size: int, overlap: int) -> None:
    norm = normalize(text)
    chunks = chunk_document("d", norm, size=size, overlap=overlap)
    _check_chunks(text, norm, chunks, size)
    if norm.text.strip():
        assert chunks
