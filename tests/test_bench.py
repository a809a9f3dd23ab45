"""run_squad on a tiny SQuAD-layout file with the fake embedder: JSON shape and metric ranges."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from evals import bench
from evals.bench import format_summary, load_squad, run_squad
from rag.errors import InputError

PARAGRAPHS = [
    ("p1", "福州新區位於福建省福州市。2015年9月,國務院批覆設立福州新區。", [
        ("p1-1", "福州新區位於哪個省?", "福建省"),
        ("p1-2", "國務院在哪一年批覆設立福州新區?", "2015年"),
    ]),
    ("p2", "秦创原是陕西省打造的创新驱动平台。西咸新区是秦创原的总窗口。", [
        ("p2-1", "秦创原的总窗口是哪个新区?", "西咸新区"),
        ("p2-2", "秦创原是哪个省打造的平台?", "陕西省"),
    ]),
    ("p3", "梵語的學術研究由德國學者開創。威廉·瓊斯在1786年發表了著名的言論。", [
        ("p3-1", "誰在1786年發表了著名的言論?", "威廉·瓊斯"),
    ]),
]


def _squad(tmp_path: Path) -> Path:
    data = {"version": "test", "data": [{"title": "t", "paragraphs": [
        {"id": pid, "context": context, "qas": [
            {"id": qid, "question": q,
             "answers": [{"text": a, "answer_start": context.index(a)}]}
            for qid, q, a in qas]}
        for pid, context, qas in PARAGRAPHS]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_doctests() -> None:
    assert doctest.testmod(bench).failed == 0


def _in_unit(value: Any) -> bool:
    return value is None or 0.0 <= value <= 1.0


def test_run_squad_shape_and_ranges(tmp_path: Path, fake_embedder: Any) -> None:
    out = tmp_path / "out.json"
    summary = run_squad(_squad(tmp_path), out_json=out, index_dir=tmp_path / "index",
                        embedder=fake_embedder, progress=False)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["summary"] == summary
    assert summary["questions"] == 5 and summary["paragraphs"] == 3
    for key in ("hit@1", "hit@5", "hit@10", "mrr@10", "em", "f1", "contains", "citation_gold"):
        assert _in_unit(summary[key]), key
    for baseline in ("bm25", "bm25_chunks", "dense_only"):
        assert set(summary[baseline]) == {"hit@1", "hit@5", "hit@10", "mrr@10"}
        assert all(_in_unit(v) for v in summary[baseline].values())
    assert summary["hit@1"] <= summary["hit@5"] <= summary["hit@10"]
    assert summary["hit@10"] == 1.0  # three paragraphs: the gold one is always in the top 10
    assert summary["query_p50_ms"] > 0 and summary["peak_memory_mb"] > 0
    assert summary["ranking_mismatches"] == 0
    assert "| hit@1 |" in format_summary(summary)
    records = data["records"]
    assert [r["qid"] for r in records] == ["p1-1", "p1-2", "p2-1", "p2-2", "p3-1"]
    for r in records:
        assert {"qid", "question", "gold_paragraph", "retrieved", "answer", "short_answer",
                "refused", "citations"} <= set(r)
        assert len(r["retrieved"]) == len(set(r["retrieved"])) <= 3
        assert set(r["retrieved"]) <= {"p1", "p2", "p3"}
        assert all(c["doc_id"] in {"p1", "p2", "p3"} for c in r["citations"])


def test_limit_still_ingests_every_paragraph_and_reruns_are_cached(tmp_path: Path,
                                                                   fake_embedder: Any) -> None:
    file, index_dir = _squad(tmp_path), tmp_path / "index"
    first = run_squad(file, out_json=tmp_path / "a.json", index_dir=index_dir, limit=2,
                      embedder=fake_embedder, progress=False)
    assert first["questions"] == 2 and first["paragraphs"] == 3 and first["chunks_embedded"] > 0
    again = run_squad(file, out_json=tmp_path / "b.json", index_dir=index_dir, limit=2,
                      embedder=fake_embedder, progress=False)
    assert again["chunks_embedded"] == 0 and again["documents_skipped"] == 3


def test_duplicate_paragraph_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    para = {"id": "x", "context": "甲。", "qas": []}
    path.write_text(json.dumps({"data": [{"paragraphs": [para, para]}]}), encoding="utf-8")
    with pytest.raises(InputError):
        load_squad(path)


# ---- real data has bad items: each is an error row, the run goes on ---------------------------
def _bad_squad(tmp_path: Path) -> Path:
    """The tiny set plus what public sets hold: empty questions, an answer without text, a
    paragraph with no context, and a question the pipeline fails on (see ``_flaky_ask``)."""
    data = json.loads(_squad(tmp_path).read_text(encoding="utf-8"))
    paragraphs = data["data"][0]["paragraphs"]
    paragraphs[0]["qas"].insert(1, {"id": "empty-1", "question": "", "answers": []})
    paragraphs[1]["qas"] += [{"id": "empty-2", "question": "  ", "answers": []},
                             {"id": "no-text", "question": "西咸新区?", "answers": [{"x": 1}]},
                             {"id": "boom", "question": "爆炸的问题?", "answers": []}]
    paragraphs.append({"id": "p4", "context": "", "qas": [{"id": "p4-1", "question": "什么?"}]})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_bad_items_become_error_rows_and_the_run_goes_on(tmp_path: Path, fake_embedder: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real_ask = bench.ask

    def flaky_ask(index: Any, question: str, **kwargs: Any) -> Any:
        if question == "爆炸的问题?":
            raise RuntimeError("the model crashed")
        return real_ask(index, question, **kwargs)

    monkeypatch.setattr(bench, "ask", flaky_ask)
    out = tmp_path / "out.json"
    summary = run_squad(_bad_squad(tmp_path), out_json=out, index_dir=tmp_path / "index",
                        embedder=fake_embedder, progress=False)
    records = json.loads(out.read_text(encoding="utf-8"))["records"]
    errors = {r["qid"]: r["error"] for r in records if "error" in r}
    assert errors == {"empty-1": "the question is empty", "empty-2": "the question is empty",
                      "no-text": "data[0].paragraphs[1].qas[3]: an answer without text",
                      "boom": "RuntimeError: the model crashed",
                      "p4-1": "paragraph p4: empty or missing context"}
    measured = [r for r in records if "error" not in r]
    assert [r["qid"] for r in measured] == ["p1-1", "p1-2", "p2-1", "p2-2", "p3-1"]
    assert summary["questions"] == 10 and summary["errors"] == 5 and summary["complete"]
    assert summary["paragraphs"] == 3  # the empty paragraph is not indexed
    assert summary["em"] == pytest.approx(sum(r["em"] for r in measured) / 5)  # errors left out
    assert summary["hit@10"] == 1.0
    assert "errors: 5 question(s) failed" in format_summary(summary)
    assert "over the 5 measured" in format_summary(summary)


def test_a_file_that_is_not_squad_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "not.json"
    path.write_text('{"version": 1}', encoding="utf-8")
    with pytest.raises(InputError, match="not SQuAD layout"):
        load_squad(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="not a readable JSON file"):
        load_squad(path)
