"""rag.store.doctor (SQLite) and rag.store.postgres.doctor: a healthy index checks clean; each kind of
damage is named."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SEEDS, FakeEmbedder

from rag.ingest import ingest
from rag.ingest.documents import Document, load_documents
from rag.store.collections import Location
from rag.store.doctor import check, diagnose
from rag.store.index import Index


def _sql(index: Index, statement: str, *args: object) -> None:
    with sqlite3.connect(index.directory / "docstore.sqlite") as db:
        db.execute(statement, args)


def _first_chunk(index: Index) -> int:
    return min(index.chunks)


def test_healthy_index_has_no_problems(seed_index: Index) -> None:
    assert check(seed_index) == []
    report = diagnose(seed_index.directory)
    assert report.ok and report.notes == []
    assert report.stats["chunks"] == len(seed_index) and report.stats["embedder"] == "fake"


def test_empty_index_is_healthy(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "index", FakeEmbedder())
    assert check(index) == []
    ingest(index, [Document.from_text("blank", "   \n")])  # no searchable text, no chunks
    assert check(index) == []


def test_missing_chunk_row_is_found(seed_index: Index) -> None:
    _sql(seed_index, "DELETE FROM chunks WHERE id=?", _first_chunk(seed_index))
    problems = check(seed_index)
    assert any("FAISS holds" in p for p in problems)
    assert any("BM25 holds" in p for p in problems)
    seed_index.reload()  # FAISS is rebuilt from the docstore, but the ordinals now have a gap
    assert any("ordinals" in p for p in check(seed_index))


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("oend", 10**9, "original span"),
    ("ostart", -1, "original span"),
    ("nend", 10**9, "normalized span"),
    ("text", "别的文字", "is not normalized"),
    ("ostart", 1, "is not where"),
])
def test_bad_offsets_are_found(seed_index: Index, column: str, value: object, expected: str) -> None:
    cid = sorted(seed_index.chunks)[1]  # ordinal 1: its ostart is > 1
    _sql(seed_index, f"UPDATE chunks SET {column}=? WHERE id=?", value, cid)
    assert any("differs from the docstore" in p for p in check(seed_index))
    seed_index.reload()
    problems = check(seed_index)
    assert any(expected in p for p in problems), problems


def test_bad_origin_map_and_sha_are_found(seed_index: Index) -> None:
    doc = seed_index.documents()[0].doc_id
    _sql(seed_index, "UPDATE documents SET origin=substr(origin, 5) WHERE doc_id=?", doc)
    _sql(seed_index, "UPDATE documents SET sha256='0' WHERE doc_id=?", seed_index.documents()[1].doc_id)
    problems = check(seed_index)
    assert any("origin map has" in p for p in problems)
    assert any("sha256" in p for p in problems)


def test_wrong_vectors_are_found(seed_index: Index) -> None:
    cid = _first_chunk(seed_index)
    other = np.zeros(seed_index.embedder.dim, dtype=np.float32)
    other[0] = 1.0
    _sql(seed_index, "UPDATE chunks SET vector=? WHERE id=?", other.tobytes(), cid)
    assert any("FAISS differs" in p for p in check(seed_index))
    _sql(seed_index, "UPDATE chunks SET vector=? WHERE id=?", b"\0" * 8, cid)
    assert any("float32" in p for p in check(seed_index))


def test_stale_loaded_index_is_reported(seed_index: Index, fake_embedder: FakeEmbedder) -> None:
    other = Index.open(seed_index.directory, fake_embedder)
    ingest(other, [Document.from_text("新", "另一份文件。")])
    assert any("reload it" in p for p in check(seed_index))
    seed_index.reload()
    assert check(seed_index) == []


def test_diagnose_notes_self_healing_cache_states(seed_index: Index) -> None:
    directory = seed_index.directory
    (directory / "vectors.json").write_text(json.dumps({"generation": 0}))
    (directory / ".vectors.faiss.abc123").write_bytes(b"partial")
    report = diagnose(directory)
    assert report.ok, report.problems
    assert any("rebuilt" in n for n in report.notes) and any("temporary" in n for n in report.notes)
    assert json.loads((directory / "vectors.json").read_text())["generation"] == seed_index.generation


def test_diagnose_reports_missing_and_damaged_stores(tmp_path: Path) -> None:
    assert "no index" in diagnose(tmp_path / "nothing").problems[0]
    assert not (tmp_path / "nothing").exists()  # the doctor never creates an index
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "docstore.sqlite").write_bytes(b"not a database" * 100)
    report = diagnose(tmp_path / "bad")
    assert not report.ok and "cannot read" in report.problems[0]


def test_open_sweeps_temp_files_of_dead_writers_only(seed_index: Index, fake_embedder: FakeEmbedder) -> None:
    """A SIGKILL mid ``atomic_write`` leaves ``.vectors.faiss.<pid>.<random>`` behind."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    directory = seed_index.directory
    gone = directory / f".vectors.faiss.{int(dead.stdout)}.x1y2z3"
    live = directory / f".vectors.faiss.{os.getpid()}.a1b2c3"  # a write in progress
    gone.write_bytes(b"partial")
    live.write_bytes(b"partial")
    Index.open(directory, fake_embedder)
    assert not gone.exists() and live.exists()
    assert any("temporary" in n for n in diagnose(directory).notes)
    live.unlink()
    assert diagnose(directory).notes == []


def test_missing_source_files_are_found(seed_index: Index, tmp_path: Path) -> None:
    """An upload's stored file is the index's own: missing, it is a problem. A file ingested from
    the user's folder is theirs to move: missing, it is a note (answers use the stored text)."""
    uploads = seed_index.directory / "uploads"
    uploads.mkdir()
    (uploads / "kept.txt").write_text("留着的文件。")
    mine = tmp_path / "mine.txt"
    ingest(seed_index, [Document.from_text("kept", "留着的文件。", path=str(uploads / "kept.txt")),
                        Document.from_text("lost", "上传后丢失的文件。", path=str(uploads / "lost.txt")),
                        Document.from_text("mine", "用户自己的文件。", path=str(mine))])
    report = diagnose(seed_index.directory)
    assert [p for p in report.problems if "uploaded" in p] == [
        f"1 uploaded documents have no stored file in {uploads.resolve()}: ['lost'] (delete them and"
        " upload them again)"]
    assert any("gone" in n and "['mine']" in n for n in report.notes)
    (uploads / "lost.txt").write_text("补回来了。")
    mine.write_text("用户自己的文件。")
    report = diagnose(seed_index.directory)
    assert report.ok and report.notes == []


# ---- PostgreSQL: rag.store.postgres.doctor, on a real server (tests/postgres_server.py) ---------
@pytest.fixture
def pg_index(pg_db: str, tmp_path: Path) -> Any:
    """The seeds in a PostgreSQL collection (fake embedder)."""
    from rag.store.postgres import PostgresIndex

    index = PostgresIndex.open(pg_db, "default", FakeEmbedder(), tmp_path / "pg")
    ingest(index, load_documents([SEEDS]))
    return index


def _pg_sql(index: Any, *statements: str) -> None:
    """Damage the collection behind the index's back: one transaction, foreign keys off in it
    (as a restore with triggers disabled would leave them)."""
    with index.pool.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def _pg_check(index: Any) -> list[str]:
    from rag.store.postgres.doctor import check as pg_check

    return pg_check(index)


def test_healthy_postgres_collection_has_no_problems(pg_index: Any, pg_db: str) -> None:
    from rag.store.postgres.schema import describe

    assert _pg_check(pg_index) == []
    report = diagnose(Location(pg_index.directory.parent, pg_db))
    assert report.ok and report.notes == [], report.problems
    assert report.stats["chunks"] == len(pg_index) and report.stats["embedder"] == "fake"
    assert report.stats["backend"] == "postgres" and report.stats["generation"] == 1
    ingest(pg_index, [Document.from_text("blank", "   \n")])  # no searchable text, no chunks
    assert _pg_check(pg_index) == []
    missing = diagnose(Location(pg_index.directory.parent, pg_db), "nope")
    assert missing.problems == [f"no collection 'nope' in the PostgreSQL database {describe(pg_db)}"]


HNSW = "DROP INDEX wenda.chunks_hnsw_1"
FIRST = "(SELECT min(id) FROM wenda.chunks)"


@pytest.mark.parametrize(("statements", "expected"), [
    ([f"DELETE FROM wenda.documents WHERE doc_id = (SELECT doc_id FROM wenda.chunks WHERE id = {FIRST})"],
     ["chunks of 1 documents not in the database", "the loaded index counts"]),
    (["UPDATE wenda.terms SET df = df + 1 WHERE id = (SELECT min(id) FROM wenda.terms)"],
     ["terms.df disagrees with the chunks' tokens for 1 tokens"]),
    ([HNSW], ["index wenda.chunks_hnsw_1 is missing"]),
    (["UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'wenda.chunks_terms'::regclass"],
     ["index wenda.chunks_terms is not valid"]),
    ([HNSW, "INSERT INTO wenda.chunks(collection, doc_id, ordinal, text, ostart, oend, nstart, nend,"
            " tokens, text_sha, embedding, bm25, terms) SELECT collection, doc_id, 1000, text, ostart, oend,"
            f" nstart, nend, tokens, text_sha, '[1,0,0]', bm25, terms FROM wenda.chunks WHERE id = {FIRST}"],
     ["1 embeddings do not have the collection's dimension 64", "the collection row counts"]),
    ([f"UPDATE wenda.chunks SET oend = 1000000000 WHERE id = {FIRST}"], ["original span"]),
    ([f"UPDATE wenda.chunks SET terms = '{{}}' WHERE id = {FIRST}"], ["term ids are not their tokens'"]),
    ([f"UPDATE wenda.chunks SET bm25 = '{{1:0.5}}/1000000000' WHERE id = {FIRST}"],
     ["sampled chunks have BM25 weights other than"]),
    (["UPDATE wenda.collections SET weighted_avgdl = weighted_avgdl * 2"], ["more than 2% apart"]),
    (["UPDATE wenda.documents SET sha256 = '0' WHERE doc_id = (SELECT min(doc_id) FROM wenda.documents)"],
     ["sha256 does not match"]),
])
def test_postgres_damage_is_named(pg_index: Any, statements: list[str], expected: list[str]) -> None:
    assert pg_index.pool.where and pg_index.stats()["collection"] == "default"
    _pg_sql(pg_index, *statements)
    problems = _pg_check(pg_index)
    for needle in expected:
        assert any(needle in p for p in problems), problems


def test_stale_postgres_index_is_reported_and_diagnose_retries(pg_index: Any, pg_db: str) -> None:
    from rag.store.postgres import PostgresIndex

    other = PostgresIndex.open(pg_db, "default", FakeEmbedder(), pg_index.directory)
    ingest(other, [Document.from_text("新", "另一份文件。")])
    assert _pg_check(pg_index) == ["the loaded index is at generation 1, the database at 2: reload it"]
    pg_index.reload()
    assert _pg_check(pg_index) == []
    assert diagnose(Location(pg_index.directory.parent, pg_db)).stats["generation"] == 2


def test_rag_doctor_checks_the_postgres_collection(pg_index: Any, pg_db: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``rag doctor`` with RAG_BACKEND=postgres: ok with the counts, or the problems and exit 1;
    the database is named, its password never (the test server trusts local connections, so a
    password in the URL is accepted and ignored)."""
    from typer.testing import CliRunner

    from rag.cli import app
    from rag.store.postgres.schema import describe

    url = pg_db.replace("postgres:@", "postgres:sekrit-pw@", 1)
    assert url != pg_db
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RAG_BACKEND", "postgres")
    monkeypatch.setenv("RAG_DATABASE_URL", url)
    monkeypatch.setenv("RAG_INDEX_DIR", str(pg_index.directory.parent))
    runner = CliRunner()
    ok = runner.invoke(app, ["doctor"])
    assert ok.exit_code == 0, ok.output
    assert f"ok: {len(pg_index.documents())} documents, {len(pg_index)} chunks, generation 1" in ok.output
    _pg_sql(pg_index, HNSW)
    damaged = runner.invoke(app, ["doctor", "--collection", "default"])
    assert damaged.exit_code == 1 and "chunks_hnsw_1 is missing" in damaged.output
    missing = runner.invoke(app, ["doctor", "-c", "nope"])
    assert missing.exit_code == 1 and "no collection 'nope'" in missing.output
    assert describe(url).split()[0] in missing.output  # the database's name
    assert not any("sekrit-pw" in r.output for r in (ok, damaged, missing))
