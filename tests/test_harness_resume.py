"""The harness survives real data and interruptions: ``rag bench squad`` resumes where it was
stopped with the metrics of an uninterrupted run, and ``rag eval`` reports a malformed gold line
as an error row instead of stopping."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from evals import bench, progress
from evals.bench import run_squad
from evals.harness import load_gold, run_gold
from evals.progress import progress_path
from rag.qa import ask as real_ask
from rag.store.index import Index

CONTEXTS = {
    "p1": "福州新區位於福建省福州市。2015年9月,國務院批覆設立福州新區。",
    "p2": "秦创原是陕西省打造的创新驱动平台。西咸新区是秦创原的总窗口。",
    "p3": "梵語的學術研究由德國學者開創。威廉·瓊斯在1786年發表了著名的言論。",
}
QUESTIONS = [("p1", "福州新區位於哪個省?", "福建省"), ("p1", "國務院在哪一年批覆設立福州新區?", "2015年"),
             ("p2", "秦创原的总窗口是哪个新区?", "西咸新区"), ("p2", "", "陕西省"),  # empty: an error row
             ("p2", "秦创原是哪个省打造的平台?", "陕西省"),
             ("p3", "誰在1786年發表了著名的言論?", "威廉·瓊斯")]
METRICS = ("questions", "errors", "hit@1", "hit@5", "hit@10", "mrr@10", "em", "f1", "contains",
           "citation_gold", "answered", "short_answer_rate", "ranking_mismatches", "bm25",
           "bm25_chunks", "dense_only")


def test_progress_doctests() -> None:
    assert doctest.testmod(progress).failed == 0


def _squad(tmp_path: Path, name: str = "tiny.json") -> Path:
    paragraphs = [{"id": pid, "context": text, "qas": [
        {"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": text.index(a)}]}
        for i, (p, q, a) in enumerate(QUESTIONS) if p == pid]} for pid, text in CONTEXTS.items()]
    path = tmp_path / name
    path.write_text(json.dumps({"data": [{"paragraphs": paragraphs}]}, ensure_ascii=False), "utf-8")
    return path


def _counting_ask(monkeypatch: pytest.MonkeyPatch, stop_after: int | None = None) -> list[str]:
    """Patch the bench's ``ask`` to record each question; Ctrl-C on call ``stop_after + 1``."""
    asked: list[str] = []

    def ask(index: Any, question: str, **kwargs: Any) -> Any:
        if stop_after is not None and len(asked) == stop_after:
            raise KeyboardInterrupt
        asked.append(question)
        return real_ask(index, question, **kwargs)

    monkeypatch.setattr(bench, "ask", ask)
    return asked


def _run(file: Path, out: Path, fake_embedder: Any, **kwargs: Any) -> dict[str, Any]:
    return run_squad(file, out_json=out, index_dir=out.parent / "index", embedder=fake_embedder,
                     progress=False, **kwargs)


def _records(out: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "ms"}
            for r in json.loads(out.read_text("utf-8"))["records"]]


def test_an_interrupted_run_resumes_to_the_metrics_of_a_full_run(
        tmp_path: Path, fake_embedder: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    file = _squad(tmp_path)
    full = _run(file, tmp_path / "full" / "out.json", fake_embedder)

    out = tmp_path / "resumed" / "out.json"
    _counting_ask(monkeypatch, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        _run(file, out, fake_embedder)
    partial = json.loads(out.read_text("utf-8"))
    assert partial["summary"]["complete"] is False
    assert [r["qid"] for r in partial["records"]] == ["q0", "q1", "q2"]
    assert progress_path(out).is_file()

    asked = _counting_ask(monkeypatch)
    resumed = _run(file, out, fake_embedder)
    assert "resuming: 3 of 6 already measured" in capsys.readouterr().err
    assert asked == ["", "秦创原是哪个省打造的平台?", "誰在1786年發表了著名的言論?"]  # never re-asked
    assert resumed["complete"] is True and resumed["errors"] == 1
    assert {k: resumed[k] for k in METRICS} == {k: full[k] for k in METRICS}
    assert _records(out) == _records(tmp_path / "full" / "out.json")
    assert not progress_path(out).exists()  # a finished run's report holds every row


def test_progress_of_other_data_or_settings_is_never_resumed(
        tmp_path: Path, fake_embedder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    file, out = _squad(tmp_path), tmp_path / "out.json"
    for kwargs in ({}, {"restart": True}, {"top_k": 3}, {}):  # each starts from the first question
        asked = _counting_ask(monkeypatch, stop_after=2)
        with pytest.raises(KeyboardInterrupt):
            _run(file, out, fake_embedder, **kwargs)
        assert asked == [QUESTIONS[0][1], QUESTIONS[1][1]], kwargs

    file.write_text(file.read_text("utf-8").replace("福建省福州市", "福建省的福州市"), "utf-8")
    asked = _counting_ask(monkeypatch)
    _run(file, out, fake_embedder)  # same name, other content: nothing resumed
    assert len(asked) == len(QUESTIONS)


def test_a_malformed_gold_line_is_an_error_row_and_the_rest_is_evaluated(
        seed_index: Index, tmp_path: Path) -> None:
    gold = Path(__file__).resolve().parent.parent / "evals" / "gold" / "seeds.jsonl"
    good = [line for line in gold.read_text("utf-8").splitlines() if line.strip()][:3]
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("\n".join([good[0], '{"id": "broken", "question": ', good[1],
                                  '{"id": "no-q", "must_include": [["x"]]}',
                                  '{"id": "bad-facts", "question": "谁?", "must_include": "x"}',
                                  good[2]]) + "\n", "utf-8")
    items = load_gold(dataset)
    assert [item.get("malformed", "")[:7] for item in items] == ["", "line 2:", "", "line 4:",
                                                                 "line 5:", ""]
    out = tmp_path / "records.json"
    summary = run_gold(seed_index, dataset, out_json=out)
    records = json.loads(out.read_text("utf-8"))["records"]
    assert summary["n"] == 6 and summary["errors"] == 3
    errors = {r["id"]: r["error"] for r in records if r["error"]}
    assert set(errors) == {"line 2", "no-q", "bad-facts"}
    assert errors["line 2"].startswith("line 2: invalid JSON")
    assert errors["no-q"] == 'line 4: no "id" or no "question" text'
    assert errors["bad-facts"] == 'line 5: "must_include" is not a list of lists of strings'
    assert all(r["answer"] for r in records if not r["error"])  # the other three were asked
