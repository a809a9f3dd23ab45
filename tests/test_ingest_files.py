"""rag.ingest over files on disk: unchanged bytes are never parsed, a file that fails keeps its
stored version, and real formats keep their page table through the index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FakeEmbedder

from rag.ingest import ingest
from rag.ingest.documents import SourceFile, find_files
from rag.loaders import Page
from rag.store.index import Index

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "reports").mkdir(parents=True)
    shutil.copy(FIXTURES / "two_pages.pdf", docs / "reports" / "brief.pdf")
    (docs / "notes.md").write_text("# 笔记\n西咸新区位于西安和咸阳之间。", encoding="utf-8")
    return docs


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index.open(tmp_path / "index", FakeEmbedder())


def test_unchanged_files_are_skipped_before_parsing(folder: Path, index: Index,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = ingest(index, find_files([folder])[0])
    assert sorted(first.added) == ["notes", "reports/brief"]

    def parse(self: SourceFile, limits: object = None) -> None:
        raise AssertionError(f"{self.path} was parsed again")

    monkeypatch.setattr(SourceFile, "load", parse)
    again = ingest(index, find_files([folder])[0])
    assert sorted(again.skipped) == ["notes", "reports/brief"] and not again.changed


def test_new_bytes_same_text_are_parsed_once_then_skipped(folder: Path, index: Index,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(index, find_files([folder])[0])
    generation = index.generation
    path = folder / "notes.md"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # CRLF: other bytes, same text
    report = ingest(index, find_files([folder])[0])
    assert report.skipped and not report.changed and index.current_generation() == generation
    monkeypatch.setattr(SourceFile, "load", lambda *a, **k: pytest.fail("parsed a third time"))
    assert not ingest(index, find_files([folder])[0]).changed


def test_a_file_that_fails_keeps_its_stored_version_even_with_prune(folder: Path, index: Index) -> None:
    ingest(index, find_files([folder])[0])
    before = index.text("reports/brief")
    (folder / "reports" / "brief.pdf").write_bytes(b"%PDF-1.7\n now broken")
    report = ingest(index, find_files([folder])[0], prune=True)
    assert [(Path(f.path).name, f.reason) for f in report.failed] == [
        ("brief.pdf", "not a valid PDF (corrupt or truncated)")]
    assert report.removed == [] and index.text("reports/brief") == before


def test_page_table_media_type_and_title_survive_the_index(folder: Path, index: Index) -> None:
    ingest(index, find_files([folder])[0])
    stored = index.stored("reports/brief")
    assert stored.media_type == "application/pdf" and stored.title == "秦创原创新驱动平台简介"
    assert [p.number for p in stored.pages] == [1, 2]
    assert isinstance(stored.pages[1], Page) and stored.text[stored.pages[1].start:].startswith("大批")
    (info,) = [d for d in index.documents() if d.doc_id == "reports/brief"]
    assert (info.pages, info.media_type, info.source) == (2, "application/pdf",
                                                          str(folder / "reports" / "brief.pdf"))
    notes = index.stored("notes")
    assert (notes.pages, notes.media_type, notes.title) == ((), "text/markdown", "笔记")


def test_an_index_made_before_pages_gains_the_columns(tmp_path: Path) -> None:
    import sqlite3

    directory = tmp_path / "old"
    directory.mkdir()
    with sqlite3.connect(directory / "docstore.sqlite") as db:  # schema 1 as it was
        db.executescript("""
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE documents(doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL,
                text TEXT NOT NULL, ntext TEXT NOT NULL, origin BLOB NOT NULL, ingested_at REAL NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1'), ('embedder', 'fake'), ('dim', '64'),
                ('generation', '0');""")
    index = Index.open(directory, FakeEmbedder())
    report = ingest(index, find_files([FIXTURES / "news.html"])[0])
    assert report.added == ["news"] and index.stored("news").media_type == "text/html"
