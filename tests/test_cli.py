"""The ``rag`` command, run for real in a subprocess with the bundled e5 model.

One index directory is built once per module (``rag ingest`` of seeds/) and shared; tests that
damage an index work on a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rag.ingest.documents import load_documents
from rag.schema import Answer
from rag.text.normalize import to_simplified

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_IDS = sorted(p.stem for p in SEEDS.iterdir() if p.suffix in (".txt", ".md"))
DESIGN_KEYS = {"question", "answer", "short_answer", "refused", "citations", "passages", "timings_ms"}
QUESTION = "第九次国家级新区工作经验交流会在哪里召开?"


def rag(*args: str, index_dir: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_INDEX_DIR=str(index_dir), RAG_GENERATOR="extractive", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONIOENCODING="utf-8", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout, check=False)


def counts(stdout: str) -> dict[str, int]:
    found = {}
    for line in stdout.splitlines():
        label, _, rest = line.strip().partition(":")
        if label in ("added", "updated", "skipped", "removed"):
            found[label] = int(rest.split()[0])
    return found


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith("error:"), message
    assert len(message.splitlines()) <= 3, message
    for needle in needles:
        assert needle in message, message


def fingerprint(index_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index_dir.iterdir()) if p.is_file() and p.name != "lock"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The shared index: the first ``rag ask --json`` on an empty directory builds it from seeds/."""
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    result = rag("ask", "--json", QUESTION, index_dir=index_dir)
    assert result.returncode == 0, result.stderr
    return index_dir, result


@pytest.fixture(scope="module")
def index_dir(built: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return built[0]


# ---- ingest -----------------------------------------------------------------------------------
def test_ingest_reports_counts(tmp_path: Path) -> None:
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "a.txt").write_text("甲文档讲的是福州新区。", encoding="utf-8")
    (docs / "b.md").write_text("乙文档讲的是西咸新区。", encoding="utf-8")
    first = rag("ingest", str(docs), index_dir=index)
    assert first.returncode == 0, first.stderr
    assert counts(first.stdout) == {"added": 2, "updated": 0, "skipped": 0, "removed": 0}
    assert "a, b" in first.stdout

    second = rag("ingest", str(docs), index_dir=index)
    assert second.returncode == 0, second.stderr
    assert counts(second.stdout) == {"added": 0, "updated": 0, "skipped": 2, "removed": 0}
    assert "0 embedded" in second.stdout

    (docs / "a.txt").write_text("甲文档改了。", encoding="utf-8")
    (docs / "b.md").unlink()
    third = rag("ingest", "--prune", str(docs), index_dir=index)
    assert third.returncode == 0, third.stderr
    assert counts(third.stdout) == {"added": 0, "updated": 1, "skipped": 0, "removed": 1}
    assert "Traceback" not in first.stderr + second.stderr + third.stderr


def test_ingest_after_auto_build_skips_the_seeds(index_dir: Path) -> None:
    before = fingerprint(index_dir)
    result = rag("ingest", index_dir=index_dir)  # default: seeds/
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == {"added": 0, "updated": 0, "skipped": len(SEED_IDS), "removed": 0}
    for doc_id in SEED_IDS[:8]:  # the CLI names the first eight
        assert doc_id in result.stdout
    assert "0 embedded" in result.stdout
    assert fingerprint(index_dir)["docstore.sqlite"] == before["docstore.sqlite"]


def test_ingest_missing_path(index_dir: Path) -> None:
    assert_clean_error(rag("ingest", "/nonexistent", index_dir=index_dir), "/nonexistent", "no such file")


def test_one_bad_file_never_aborts_the_batch(index_dir: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("一个正常的文档。", encoding="utf-8")
    (docs / "bad.txt").write_bytes(b"\x7fELF\x00\x00\x01\x02" * 64)
    (docs / "table.csv").write_text("a,b", encoding="utf-8")
    result = rag("ingest", str(docs), index_dir=index_dir)
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout)["added"] == 1
    table = result.stdout[result.stdout.index("not ingested"):]
    assert "bad.txt" in table and "binary" in table  # each file passed over, and why
    assert "table.csv" in table and "unsupported file type .csv" in table
    with sqlite3.connect(index_dir / "docstore.sqlite") as db:
        stored = sorted(r[0] for r in db.execute("SELECT doc_id FROM documents"))
    assert stored == sorted([*SEED_IDS, "good"])
    assert rag("ingest", "--prune", index_dir=index_dir).returncode == 0  # back to the seeds


def test_nothing_readable_is_an_error_that_says_so(index_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    before = fingerprint(index_dir)
    result = rag("ingest", str(tmp_path / "bad"), index_dir=index_dir)
    assert result.returncode == 1 and "no file could be read" in result.stderr
    assert "broken.pdf" in result.stdout and "not a valid PDF" in result.stdout
    (tmp_path / "empty").mkdir()
    result = rag("ingest", str(tmp_path / "empty"), index_dir=index_dir)
    assert result.returncode == 1 and "no supported files found" in result.stderr
    assert fingerprint(index_dir)["docstore.sqlite"] == before["docstore.sqlite"]


FIXTURES = ROOT / "tests" / "fixtures" / "documents"


def test_a_folder_of_real_documents_answers_with_pages(tmp_path: Path) -> None:
    """PDF, Word, slides, a sheet and a web page in nested folders, plus a broken PDF: the rest
    is ingested, and a question about the PDF cites page 2 with an exact quote."""
    docs, index = tmp_path / "team", tmp_path / "index"
    for name, folder in (("two_pages.pdf", "reports/2023"), ("taiwan.docx", "tea"),
                         ("deck.pptx", "slides"), ("sheet.xlsx", "finance"), ("news.html", "web")):
        (docs / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, docs / folder / name)
    (docs / "reports" / "broken.pdf").write_bytes(b"%PDF-1.7\n garbage")
    ingested = rag("ingest", str(docs), index_dir=index)
    assert ingested.returncode == 0, ingested.stderr
    assert counts(ingested.stdout)["added"] == 5
    assert "broken.pdf" in ingested.stdout and "not a valid PDF" in ingested.stdout
    with sqlite3.connect(index / "docstore.sqlite") as db:
        rows = dict(db.execute("SELECT doc_id, media_type FROM documents"))
    assert rows["reports/2023/two_pages"] == "application/pdf" and "tea/taiwan" in rows

    result = rag("ask", "--json", "秦创原创新驱动平台在哪里启动?", index_dir=index)
    assert result.returncode == 0, result.stderr
    answer = Answer.model_validate_json(result.stdout)
    assert not answer.refused and "西安" in answer.answer
    cited = [c for c in answer.citations if "西安启动" in c.quote]
    assert cited and cited[0].doc_id == "reports/2023/two_pages"
    assert cited[0].page == 2 and cited[0].location == "第 2 页"
    with sqlite3.connect(index / "docstore.sqlite") as db:
        (text,) = db.execute("SELECT text FROM documents WHERE doc_id=?", (cited[0].doc_id,)).fetchone()
    assert text[cited[0].start:cited[0].end] == cited[0].quote


# ---- ask --------------------------------------------------------------------------------------
def test_ask_json_builds_the_index_and_prints_one_answer(
        built: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = built
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    assert set(data) >= DESIGN_KEYS
    answer = Answer.model_validate(data)
    assert answer.question == QUESTION
    assert not answer.refused
    assert answer.citations and answer.passages
    assert all(isinstance(v, float) for v in answer.timings_ms.values())
    originals = {d.doc_id: d.text for d in load_documents([SEEDS])}
    for c in answer.citations:
        assert c.doc_id in originals
        assert c.quote == originals[c.doc_id][c.start:c.end], c
        assert c.quote.strip()
        assert c.chunk_id.startswith(c.doc_id)
    for p in answer.passages:
        assert p.doc_id in originals
    if answer.short_answer is not None:
        assert any(to_simplified(answer.short_answer) in to_simplified(c.quote) for c in answer.citations)


@pytest.mark.parametrize("question", ["", "   ", "问" * 2001], ids=["empty", "blank", "2001-chars"])
def test_ask_bad_question(index_dir: Path, question: str) -> None:
    result = rag("ask", question, index_dir=index_dir)
    assert result.returncode != 0
    assert_clean_error(result, "question")


def test_ask_bad_question_json(index_dir: Path) -> None:
    assert_clean_error(rag("ask", "--json", "", index_dir=index_dir), "empty")


# ---- incompatible index -----------------------------------------------------------------------
@pytest.fixture
def old_index(index_dir: Path, tmp_path: Path) -> Path:
    """A copy of the shared index that claims another schema version."""
    copy = tmp_path / "old-index"
    shutil.copytree(index_dir, copy)
    with sqlite3.connect(copy / "docstore.sqlite") as db:
        db.execute("UPDATE meta SET value='0' WHERE key='schema_version'")
    return copy


@pytest.mark.parametrize("command", [["ingest"], ["ask", "--json", QUESTION]], ids=["ingest", "ask"])
def test_other_schema_version_needs_rebuild(old_index: Path, command: list[str]) -> None:
    assert_clean_error(rag(*command, index_dir=old_index), "--rebuild")


def test_rebuild_fixes_an_incompatible_index(old_index: Path, tmp_path: Path) -> None:
    docs = tmp_path / "small"
    docs.mkdir()
    (docs / "small.txt").write_text("秦创原量子信息科技联合创新中心落户西咸新区。", encoding="utf-8")
    result = rag("ingest", "--rebuild", str(docs), index_dir=old_index)
    assert result.returncode == 0, result.stderr
    assert counts(result.stdout) == {"added": 1, "updated": 0, "skipped": 0, "removed": 0}
    with sqlite3.connect(old_index / "docstore.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] != "0"
        assert [r[0] for r in db.execute("SELECT doc_id FROM documents")] == ["small"]


def test_ask_undecodable_argv_is_handled(index_dir: Path) -> None:
    # argv bytes that are not UTF-8 arrive as lone surrogates; they must not crash the JSON output
    result = rag("ask", "--json", "\udcff\udcfe福州新区", index_dir=index_dir)  # bytes ff fe in argv
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1)
    if result.returncode == 0:
        Answer.model_validate_json(result.stdout)
