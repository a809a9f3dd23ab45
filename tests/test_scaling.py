"""The approximate FAISS index chosen above ``HNSW_ABOVE`` (evals/scale.py at test size; no timings
asserted). The scale-out backend itself (PostgreSQL + pgvector) is tested in tests/test_postgres.py
and tests/test_backends.py."""

from __future__ import annotations


def test_approximate_index_is_chosen_above_the_threshold_and_recalls() -> None:
    from evals.scale import run_scale

    result = run_scale(20_000, threshold=10_000, queries=200, ef_search=(64,), flat_latency_queries=5,
                       log=lambda *_: None)
    assert result["index"] == "IndexHNSWFlat" and result["recall_at_default"] >= 0.95
    below = run_scale(5_000, threshold=10_000, queries=50, flat_latency_queries=5, log=lambda *_: None)
    assert below["index"] == "IndexFlatIP" and below["recall_at_default"] == 1.0
