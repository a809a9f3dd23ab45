"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates, fused by weighted scores.

Plain reciprocal-rank fusion was measured worse than BM25 alone on DRCD (0.895 vs 0.919 hit@1),
because it throws away how far ahead the best BM25 match is. Here each path's scores are scaled
per query (BM25 by its best score, cosine by its spread over the candidates) and mixed with a
weight tuned on DRCD dev and the seeds gold set (``DENSE_WEIGHT``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.chunk import Chunk
from rag.index import Index
from rag.lexical import tokenize

__all__ = ["DENSE_WEIGHT", "Hit", "Query", "retrieve"]

DENSE_WEIGHT = 0.35
POOL = 50  # candidates taken from each path before fusion


@dataclass(frozen=True)
class Query:
    """A normalized question, its BM25 tokens and its embedding."""

    text: str
    tokens: list[str]
    vector: np.ndarray


@dataclass(frozen=True)
class Hit:
    id: int
    chunk: Chunk
    score: float  # fused, in [0, 1]
    dense: float  # cosine similarity
    lexical: float  # BM25 score (0 when not among the lexical candidates)


def make_query(index: Index, normalized_question: str) -> Query:
    vector = index.embedder.embed_queries([normalized_question])[0]
    return Query(normalized_question, tokenize(normalized_question), vector)


def retrieve(index: Index, query: Query, k: int, *, dense_weight: float = DENSE_WEIGHT,
             use_dense: bool = True, use_lexical: bool = True) -> list[Hit]:
    """The ``k`` best chunks for ``query``, best first."""
    dense = dict(index.dense_search(query.vector, POOL)) if use_dense else {}
    lexical = dict(index.lexical_search(query.tokens, POOL)) if use_lexical else {}
    ids = list(dense.keys() | lexical.keys())
    if not ids:
        return []
    cos = np.array([dense[i] if i in dense else _cosine(index, i, query.vector) for i in ids])
    bm = np.array([lexical.get(i, 0.0) for i in ids])
    bm_scaled = bm / bm.max() if bm.max() > 0 else bm
    spread = cos.max() - cos.min()
    cos_scaled = (cos - cos.min()) / spread if spread > 1e-6 else np.ones_like(cos)
    if not use_lexical or not bm.any():
        fused = cos_scaled
    elif not use_dense:
        fused = bm_scaled
    else:
        fused = dense_weight * cos_scaled + (1 - dense_weight) * bm_scaled
    order = np.argsort(-fused, kind="stable")[:k]
    return [Hit(ids[j], index.chunks[ids[j]], float(fused[j]), float(cos[j]), float(bm[j]))
            for j in order]


def _cosine(index: Index, chunk_id: int, vector: np.ndarray) -> float:
    return float(index.vector(chunk_id) @ vector)
