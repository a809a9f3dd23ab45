"""evals.docbench: the PDF ingest figure, on a tiny corpus with the fake embedder."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FakeEmbedder

from evals.docbench import format_table, measure, write_pdfs


def test_measures_pages_and_ratios(tmp_path: Path) -> None:
    source = tmp_path / "cmrc.json"
    source.write_text(json.dumps({"data": [{"paragraphs": [
        {"context": "国家级新区工作经验交流会在福州召开。" * 20},
        {"context": "秦创原创新驱动平台于2021年3月在西安启动。" * 20}]}]}), encoding="utf-8")
    paths = write_pdfs(tmp_path / "pdfs", docs=2, pages=2, source=source)
    assert [p.name for p in paths] == ["doc000.pdf", "doc001.pdf"]
    result = measure(tmp_path / "pdfs", FakeEmbedder(), tmp_path / "index")
    assert result["documents"] == 2 and result["pages"] == 4 and result["chunks"] > 0
    assert set(result["ratios"]) == {"load_vs_raw", "ingest_vs_embed"}
    assert all(v > 0 for v in result["pages_per_s"].values())
    assert "pages/s" in format_table(result)
