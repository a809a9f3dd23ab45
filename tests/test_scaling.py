"""The scale-out seam (docs/scaling.md), proven with Qdrant in local mode, and the approximate
FAISS index chosen above ``HNSW_ABOVE`` (evals/scale.py at test size; no timings asserted).

``QdrantIndex`` keeps the SQLite docstore as the source of truth and swaps the in-process vector
and keyword search for a Qdrant collection: dense vectors plus BM25-style sparse vectors (jieba
tokens, Qdrant's IDF modifier). Nothing above ``Index`` changes: ``rag.qa.ask`` runs unmodified.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections import Counter
from typing import Any

import numpy as np
import pytest

from rag.qa import ask
from rag.store.filters import Filter
from rag.store.index import Index

qdrant_client = pytest.importorskip("qdrant_client")
from qdrant_client import models  # noqa: E402

QUESTIONS = ["秦创原量子信息科技联合创新中心聚焦哪些领域?", "第九次国家级新区工作经验交流会在哪里召开?",
             "西咸新区的主任是谁?", "火星上有几个湖泊?"]


def _sparse(tokens: list[str]) -> models.SparseVector:
    counts = Counter(zlib.crc32(t.encode()) for t in tokens)
    return models.SparseVector(indices=list(counts), values=[float(v) for v in counts.values()])


class QdrantIndex(Index):
    """``Index`` with dense and lexical search served by Qdrant (``:memory:`` or a path/URL).

    The hook: ``_load_faiss`` builds whatever answers ``dense_search`` / ``vector``; here it
    (re)fills a collection from the docstore at the current generation.
    """

    client: Any = None

    def _load_faiss(self, db: sqlite3.Connection, generation: int, ids: np.ndarray) -> Any:
        if self.client is None:
            self.client = qdrant_client.QdrantClient(":memory:")
        name = f"chunks_g{generation}"
        if not self.client.collection_exists(name):
            self.client.create_collection(
                name, vectors_config={"dense": models.VectorParams(size=self.embedder.dim,
                                                                   distance=models.Distance.DOT)},
                sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)})
            rows = db.execute("SELECT id, vector, tokens FROM chunks ORDER BY id")
            self.client.upsert(name, [
                models.PointStruct(id=cid, vector={"dense": np.frombuffer(blob, np.float32).tolist(),
                                                   "bm25": _sparse(tokens.split(" ") if tokens else [])})
                for cid, blob, tokens in rows])
        self.collection = name
        return self.client

    def dense_search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None
                     ) -> list[tuple[int, float]]:
        if not len(self) or k <= 0:
            return []
        hits = self.client.query_points(self.collection, query=vector.astype(float).tolist(), using="dense",
                                        limit=min(k, len(self)), query_filter=_only(allowed)).points
        return [(int(h.id), float(h.score)) for h in hits]

    def vector(self, chunk_id: int) -> np.ndarray:
        point = self.client.retrieve(self.collection, [int(chunk_id)], with_vectors=["dense"])[0]
        return np.asarray(point.vector["dense"], dtype=np.float32)

    def lexical_search(self, tokens: list[str], k: int, allowed: np.ndarray | None = None
                       ) -> list[tuple[int, float]]:
        if not tokens or not len(self):
            return []
        hits = self.client.query_points(self.collection, query=_sparse(tokens), using="bm25",
                                        limit=min(k, len(self)), query_filter=_only(allowed)).points
        return [(int(h.id), float(h.score)) for h in hits if h.score > 0]


def _only(allowed: np.ndarray | None) -> models.Filter | None:
    """A filter's chunk ids (``Index.chunk_ids``) as Qdrant's own filter, applied in the search."""
    return None if allowed is None else models.Filter(must=[models.HasIdCondition(has_id=allowed.tolist())])


def test_qdrant_backend_plugs_into_the_seam(seed_index: Index) -> None:
    qdrant = QdrantIndex.open(seed_index.directory, seed_index.embedder)
    assert qdrant.client.count(qdrant.collection).count == len(seed_index)
    vector = seed_index.embedder.embed_queries([QUESTIONS[0]])[0]
    faiss_hits, qdrant_hits = seed_index.dense_search(vector, 10), qdrant.dense_search(vector, 10)
    assert [i for i, _ in qdrant_hits] == [i for i, _ in faiss_hits]
    np.testing.assert_allclose([s for _, s in qdrant_hits], [s for _, s in faiss_hits], atol=1e-5)
    some = next(iter(seed_index.chunks))
    np.testing.assert_allclose(qdrant.vector(some), seed_index.vector(some), atol=1e-6)
    for question in QUESTIONS:  # the whole pipeline, unmodified, over the other backend
        ours, theirs = ask(seed_index, question), ask(qdrant, question)
        assert theirs.refused == ours.refused, question
        if not ours.refused:
            assert {c.doc_id for c in theirs.citations} == {c.doc_id for c in ours.citations}
            for c in theirs.citations:
                assert qdrant.text(c.doc_id)[c.start:c.end] == c.quote
    one = sorted(seed_index.loaded.docs)[0]  # a filter passes through the seam to both searches
    where = Filter(doc_ids=(one,))
    ours, theirs = ask(seed_index, QUESTIONS[0], where=where), ask(qdrant, QUESTIONS[0], where=where)
    assert {p.doc_id for p in theirs.passages} == {p.doc_id for p in ours.passages} == {one}


def test_approximate_index_is_chosen_above_the_threshold_and_recalls() -> None:
    from evals.scale import run_scale

    result = run_scale(20_000, threshold=10_000, queries=200, ef_search=(64,), flat_latency_queries=5,
                       log=lambda *_: None)
    assert result["index"] == "IndexHNSWFlat" and result["recall_at_default"] >= 0.95
    below = run_scale(5_000, threshold=10_000, queries=50, flat_latency_queries=5, log=lambda *_: None)
    assert below["index"] == "IndexFlatIP" and below["recall_at_default"] == 1.0
