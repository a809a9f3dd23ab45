"""Hybrid retrieval: how the dense leg scores a chunk (real FAISS and BM25, fake embedder)."""

from __future__ import annotations

import pytest

from rag.answer import retrieve as r
from rag.answer.retrieve import Hit, make_query, retrieve
from rag.store.index import Index

QUESTION = "秦创原量子信息科技联合创新中心将聚焦哪些领域?"


def _topical(hits: list[Hit], share: float) -> list[float]:
    best: dict[str, float] = {}
    for h in hits:
        best[h.chunk.doc_id] = max(best.get(h.chunk.doc_id, -1.0), h.dense)
    return [share * h.dense + (1 - share) * best[h.chunk.doc_id] for h in hits]


def test_a_chunk_scores_mostly_by_its_documents_best_cosine(seed_index: Index) -> None:
    # the embedding says which document is on topic, the words (BM25, coverage) say which of its
    # passages answers: dense alone orders documents first, then passages by their own cosine
    hits = retrieve(seed_index, make_query(seed_index, QUESTION), 20, use_lexical=False, rescore=False)
    assert len({h.chunk.doc_id for h in hits}) == 2
    assert hits[0].dense == max(h.dense for h in hits)
    topical = _topical(hits, r.CHUNK_SHARE)
    assert topical == sorted(topical, reverse=True)
    for doc in {h.chunk.doc_id for h in hits}:
        mine = [h.dense for h in hits if h.chunk.doc_id == doc]
        assert mine == sorted(mine, reverse=True)
    by_own = [h.dense for h in hits]
    assert by_own != sorted(by_own, reverse=True)  # the document's cosine did reorder something


def test_with_the_whole_share_a_chunk_scores_by_its_own_cosine(seed_index: Index,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(r, "CHUNK_SHARE", 1.0)
    hits = retrieve(seed_index, make_query(seed_index, QUESTION), 20, use_lexical=False, rescore=False)
    own = [h.dense for h in hits]
    assert own == sorted(own, reverse=True)
