"""rag.store.index + rag.ingest: real SQLite, FAISS and BM25 in tmp_path; the fake embedder at the seam."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import SEEDS, FakeEmbedder

from rag.errors import IncompatibleIndexError, IndexStateError, NotFoundError
from rag.ingest import delete_documents, ingest
from rag.ingest.documents import Document, load_documents
from rag.store.index import Index
from rag.text.lexical import tokenize
from rag.text.normalize import normalize

SEED_IDS = sorted(p.stem for p in SEEDS.iterdir() if p.suffix in (".txt", ".md"))
assert len(SEED_IDS) >= 2, "these tests edit one seed and watch the others"


def _db_count(index: Index, doc_id: str | None = None) -> int:
    with sqlite3.connect(index.directory / "docstore.sqlite") as db:
        if doc_id is None:
            return int(db.execute("SELECT count(*) FROM chunks").fetchone()[0])
        return int(db.execute("SELECT count(*) FROM chunks WHERE doc_id=?", (doc_id,)).fetchone()[0])


def _check_consistent(index: Index) -> None:
    """FAISS, the docstore, BM25 and the in-memory chunk map agree."""
    n = len(index.chunks)
    assert index.loaded.faiss.ntotal == n
    assert _db_count(index) == n
    assert index.lexicon.size == n
    assert sorted(index.loaded.rows.tolist()) == sorted(index.chunks)
    for doc in index.documents():
        ordinals = sorted(c.ordinal for c in index.chunks.values() if c.doc_id == doc.doc_id)
        assert ordinals == list(range(doc.chunks))


def _doc_chunk_ids(index: Index, doc_id: str) -> dict[int, str]:
    return {i: c.text for i, c in index.chunks.items() if c.doc_id == doc_id}


def _open(path: Path, embedder: FakeEmbedder | None = None) -> Index:
    return Index.open(path, embedder or FakeEmbedder())


def _all_dense(index: Index, text: str) -> list[int]:
    vector = index.embedder.embed_queries([text])[0]
    return [i for i, _ in index.dense_search(vector, 1000)]


# ---- first ingest and skipping ----------------------------------------------------------------
def test_ingest_seeds_counts_agree(tmp_path: Path, seeds_copy: Path, fake_embedder: FakeEmbedder) -> None:
    index = _open(tmp_path / "index", fake_embedder)
    assert len(index) == 0 and index.generation == 0
    report = ingest(index, load_documents([seeds_copy]))
    assert sorted(report.added) == SEED_IDS
    assert report.updated == report.skipped == report.removed == []
    assert len(index) > 10
    assert report.chunks_embedded == fake_embedder.passages_embedded == len(index)
    _check_consistent(index)
    assert [d.doc_id for d in index.documents()] == SEED_IDS
    assert sum(d.chunks for d in index.documents()) == len(index)


def test_chunks_stored_with_original_offsets(seed_index: Index) -> None:
    for chunk in seed_index.chunks.values():
        original = seed_index.text(chunk.doc_id)
        norm = seed_index.normalized(chunk.doc_id)
        assert 0 <= chunk.start < chunk.end <= len(original)
        assert norm.text[chunk.nstart:chunk.nend] == chunk.text
        assert normalize(original[chunk.start:chunk.end]).text == chunk.text
    with pytest.raises(NotFoundError):
        seed_index.text("no_such_doc")


def test_stored_vectors_match_chunks(seed_index: Index) -> None:
    embedder = seed_index.embedder
    for chunk_id, chunk in list(seed_index.chunks.items())[:5]:
        expected = embedder.embed_queries([chunk.text])[0]
        np.testing.assert_allclose(seed_index.vector(chunk_id), expected, rtol=1e-5, atol=1e-6)
        assert _all_dense(seed_index, chunk.text)[0] == chunk_id


def _stamps(directory: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


def test_second_ingest_embeds_nothing(tmp_path: Path, seeds_copy: Path, fake_embedder: FakeEmbedder) -> None:
    index = _open(tmp_path / "index", fake_embedder)
    ingest(index, load_documents([seeds_copy]))
    embedded, generation, chunks = fake_embedder.passages_embedded, index.generation, dict(index.chunks)
    loaded, stamps = index.loaded, _stamps(index.directory)
    report = ingest(index, load_documents([seeds_copy]))
    assert index.loaded is loaded  # nothing reloaded
    assert _stamps(index.directory) == stamps  # nothing written
    assert sorted(report.skipped) == SEED_IDS
    assert report.added == report.updated == report.removed == []
    assert not report.changed
    assert report.chunks_embedded == 0
    assert fake_embedder.passages_embedded == embedded
    assert index.generation == generation
    assert index.chunks == chunks


def test_unchanged_ingest_still_picks_up_another_writer(tmp_path: Path, seeds_copy: Path) -> None:
    index, other = _open(tmp_path / "index"), _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    other.refresh()
    ingest(other, [Document.from_text("extra", "第三个文档。它有两句话。", path="extra.txt")])
    assert not ingest(index, load_documents([seeds_copy])).changed
    assert index.chunks == other.chunks and index.generation == other.generation
    loaded = index.loaded
    assert delete_documents(index, ["no_such_doc"]) == [] and index.loaded is loaded


# ---- snapshots: what one reader sees while the index reloads ----------------------------------
def test_a_snapshot_keeps_its_state_through_reloads(seed_index: Index) -> None:
    snap = seed_index.snapshot()
    before = dict(snap.chunks)
    gone, kept = SEED_IDS[0], SEED_IDS[1]
    probe = next(c.text for c in before.values() if c.doc_id == gone)
    delete_documents(seed_index, [gone])
    assert {c.doc_id for c in seed_index.chunks.values()} == set(SEED_IDS[1:])
    assert snap.chunks == before and snap.generation == seed_index.generation - 1
    assert set(_all_dense(snap, probe)) == set(before)  # vectors of the snapshot's state
    assert all(i in before for i, _ in snap.lexical_search(tokenize(probe), 50))
    assert snap.text(kept) == seed_index.text(kept)
    with pytest.raises(NotFoundError):
        snap.text(gone)  # deleted from the docstore since: read lazily, so not found


def test_a_snapshot_never_reads_a_changed_document(seed_index: Index) -> None:
    """Offsets in a snapshot's chunks point into the text it loaded; a newer text is refused."""
    edited = SEED_IDS[0]
    snap = seed_index.snapshot()
    ingest(seed_index, [Document.from_text(edited, "全新的内容。", path=f"{edited}.txt")])
    assert seed_index.text(edited) == "全新的内容。"
    with pytest.raises(NotFoundError, match="as loaded"):
        snap.text(edited)


# ---- updates ----------------------------------------------------------------------------------
def test_edit_one_file_updates_only_it(tmp_path: Path, seeds_copy: Path, fake_embedder: FakeEmbedder) -> None:
    index = _open(tmp_path / "index", fake_embedder)
    ingest(index, load_documents([seeds_copy]))
    edited, *others = SEED_IDS
    others_before = {d: _doc_chunk_ids(index, d) for d in others}
    edited_before = _doc_chunk_ids(index, edited)
    path = seeds_copy / f"{edited}.txt"
    appended = path.read_text(encoding="utf-8") + "\n福州新區(qū)新增了一句測試用的結尾。\n"
    path.write_text(appended, encoding="utf-8")

    embedded = fake_embedder.passages_embedded
    report = ingest(index, load_documents([seeds_copy]))
    assert report.updated == [edited]
    assert report.skipped == others
    assert report.added == report.removed == []
    assert {d: _doc_chunk_ids(index, d) for d in others} == others_before  # same ids and texts
    assert report.chunks_reused > 0
    assert 0 < report.chunks_embedded < len(edited_before)
    assert fake_embedder.passages_embedded - embedded == report.chunks_embedded
    edited_after = _doc_chunk_ids(index, edited)
    assert report.chunks_reused + report.chunks_embedded == len(edited_after)
    assert any("测试用的结尾" in t for t in edited_after.values())
    assert not set(edited_after) & set(edited_before)  # the doc's rows were replaced
    _check_consistent(index)


def test_reused_vectors_are_the_right_ones(tmp_path: Path, seeds_copy: Path) -> None:
    index = _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    path = seeds_copy / f"{SEED_IDS[1]}.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n结尾。\n", encoding="utf-8")
    ingest(index, load_documents([seeds_copy]))
    for chunk_id, chunk in index.chunks.items():
        expected = index.embedder.embed_queries([chunk.text])[0]
        np.testing.assert_allclose(index.vector(chunk_id), expected, rtol=1e-5, atol=1e-6)


# ---- removal ----------------------------------------------------------------------------------
def test_prune_removes_deleted_file_everywhere(tmp_path: Path, seeds_copy: Path) -> None:
    index = _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    gone, *kept = SEED_IDS
    gone_chunks = _doc_chunk_ids(index, gone)
    probe = next(iter(gone_chunks.values()))
    assert set(_all_dense(index, probe)) & set(gone_chunks)
    assert {i for i, _ in index.lexical_search(tokenize(probe), 100)} & set(gone_chunks)

    (seeds_copy / f"{gone}.txt").unlink()
    report = ingest(index, load_documents([seeds_copy]), prune=True)
    assert report.removed == [gone]
    assert report.skipped == kept
    assert not _doc_chunk_ids(index, gone)
    assert not set(index.chunks) & set(gone_chunks)
    assert _db_count(index, gone) == 0
    dense = _all_dense(index, probe)
    assert dense and set(dense) <= set(index.chunks)
    lexical = [i for i, _ in index.lexical_search(tokenize(probe), 100)]
    assert set(lexical) <= set(index.chunks)
    assert all(index.chunks[i].doc_id in kept for i in dense + lexical)
    assert [d.doc_id for d in index.documents()] == kept
    _check_consistent(index)
    with pytest.raises(NotFoundError):
        index.text(gone)


def test_without_prune_missing_files_stay(tmp_path: Path, seeds_copy: Path) -> None:
    index = _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    (seeds_copy / f"{SEED_IDS[0]}.txt").unlink()
    report = ingest(index, load_documents([seeds_copy]))
    assert report.removed == []
    assert [d.doc_id for d in index.documents()] == SEED_IDS


def test_delete_documents(seed_index: Index) -> None:
    generation = seed_index.generation
    gone, *kept = SEED_IDS
    assert delete_documents(seed_index, [gone, "no_such_doc"]) == [gone]
    assert seed_index.generation == generation + 1
    assert {c.doc_id for c in seed_index.chunks.values()} == set(kept)
    _check_consistent(seed_index)
    assert delete_documents(seed_index, [gone]) == []
    assert seed_index.generation == generation + 1  # nothing changed, no new generation


# ---- persistence and the FAISS cache ----------------------------------------------------------
def _faiss_stamp(directory: Path) -> tuple[int, int]:
    st = (directory / "vectors.faiss").stat()
    return st.st_ino, st.st_mtime_ns


def test_reopen_loads_the_same_index(seed_index: Index) -> None:
    directory = seed_index.directory
    stamp = _faiss_stamp(directory)
    probe = next(iter(seed_index.chunks.values())).text
    reopened = _open(directory)
    assert reopened.chunks == seed_index.chunks
    assert reopened.generation == seed_index.generation
    assert _faiss_stamp(directory) == stamp  # the cache was read, not rewritten
    assert _all_dense(reopened, probe) == _all_dense(seed_index, probe)
    _check_consistent(reopened)


def test_missing_faiss_cache_is_rebuilt(seed_index: Index) -> None:
    directory = seed_index.directory
    probe = next(iter(seed_index.chunks.values())).text
    (directory / "vectors.faiss").unlink()
    reopened = _open(directory)
    assert (directory / "vectors.faiss").exists()
    assert reopened.chunks == seed_index.chunks
    assert _all_dense(reopened, probe) == _all_dense(seed_index, probe)
    _check_consistent(reopened)


@pytest.mark.parametrize("garbage", [b"", b"not a faiss index at all" * 50, bytes(range(256)) * 8])
def test_damaged_faiss_cache_is_rebuilt(seed_index: Index, garbage: bytes) -> None:
    directory = seed_index.directory
    probe = next(iter(seed_index.chunks.values())).text
    (directory / "vectors.faiss").write_bytes(garbage)
    reopened = _open(directory)
    assert (directory / "vectors.faiss").read_bytes() != garbage
    assert _all_dense(reopened, probe) == _all_dense(seed_index, probe)
    _check_consistent(reopened)


def test_truncated_faiss_cache_is_rebuilt(seed_index: Index) -> None:
    directory = seed_index.directory
    data = (directory / "vectors.faiss").read_bytes()
    (directory / "vectors.faiss").write_bytes(data[: len(data) // 2])
    reopened = _open(directory)
    assert (directory / "vectors.faiss").read_bytes() == data
    _check_consistent(reopened)


def test_stale_faiss_cache_is_rebuilt(tmp_path: Path, seeds_copy: Path) -> None:
    index = _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    old = (index.directory / "vectors.faiss").read_bytes()
    delete_documents(index, [SEED_IDS[0]])
    (index.directory / "vectors.faiss").write_bytes(old)  # cache from the previous generation
    reopened = _open(index.directory)
    assert reopened.loaded.faiss.ntotal == len(reopened) == len(index)
    _check_consistent(reopened)


def test_different_embedder_is_incompatible(seed_index: Index) -> None:
    class Other(FakeEmbedder):
        name = "other"

    with pytest.raises(IncompatibleIndexError, match="fake") as info:
        Index.open(seed_index.directory, Other())
    assert "--rebuild" in str(info.value)
    assert issubclass(IncompatibleIndexError, IndexStateError)


def test_schema_version_mismatch_is_incompatible(seed_index: Index) -> None:
    with sqlite3.connect(seed_index.directory / "docstore.sqlite") as db:
        db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(IncompatibleIndexError, match="--rebuild"):
        _open(seed_index.directory)


def test_damaged_docstore_is_a_clean_error(tmp_path: Path) -> None:
    directory = tmp_path / "index"
    directory.mkdir()
    (directory / "docstore.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexStateError, match="damaged"):
        _open(directory)


def test_empty_document_is_stored_without_chunks(tmp_path: Path) -> None:
    index = _open(tmp_path / "index")
    docs = [Document.from_text("blank", " \n\n "), Document.from_text("real", "有内容。")]
    report = ingest(index, docs)
    assert sorted(report.added) == ["blank", "real"]
    assert {d.doc_id: d.chunks for d in index.documents()} == {"blank": 0, "real": 1}
    assert sorted(ingest(index, docs).skipped) == ["blank", "real"]
    _check_consistent(index)


def test_generation_increments(tmp_path: Path, seeds_copy: Path) -> None:
    index = _open(tmp_path / "index")
    assert index.generation == index.current_generation() == 0
    ingest(index, load_documents([seeds_copy]))
    assert index.generation == index.current_generation() == 1
    ingest(index, load_documents([seeds_copy]))
    assert index.generation == 1
    path = seeds_copy / f"{SEED_IDS[0]}.txt"
    path.write_text("全新的内容。", encoding="utf-8")
    ingest(index, load_documents([seeds_copy]))
    assert index.generation == 2
    ingest(index, [], prune=True)
    assert index.generation == 3 and len(index) == 0
    _check_consistent(index)


def test_refresh_sees_another_writer(tmp_path: Path, seeds_copy: Path) -> None:
    reader = _open(tmp_path / "index")
    writer = _open(tmp_path / "index")
    assert reader.refresh() is False
    ingest(writer, load_documents([seeds_copy]))
    assert len(reader) == 0
    assert reader.refresh() is True
    assert reader.chunks == writer.chunks
    assert reader.generation == writer.generation
    assert reader.refresh() is False
    delete_documents(writer, [SEED_IDS[0]])
    assert reader.refresh() is True
    assert reader.chunks == writer.chunks
    _check_consistent(reader)


def test_failed_embedding_leaves_the_index_intact(tmp_path: Path, seeds_copy: Path) -> None:
    class Broken(FakeEmbedder):
        def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
            raise RuntimeError("model crashed")

    index = _open(tmp_path / "index")
    ingest(index, load_documents([seeds_copy]))
    before = dict(index.chunks)
    path = seeds_copy / f"{SEED_IDS[0]}.txt"
    path.write_text("全新的内容。", encoding="utf-8")
    broken = _open(tmp_path / "index", Broken())
    with pytest.raises(RuntimeError, match="model crashed"):
        ingest(broken, load_documents([seeds_copy]))
    reopened = _open(tmp_path / "index")
    assert reopened.chunks == before
    assert reopened.generation == 1
    _check_consistent(reopened)


# ---- concurrency ------------------------------------------------------------------------------
class SlowEmbedder(FakeEmbedder):
    """Sleeps while embedding, so two unserialized writers would overlap."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.05)
        return super().embed_passages(texts)


def test_concurrent_ingests_are_serialized(tmp_path: Path, seeds_copy: Path) -> None:
    extra = Document.from_text("extra", "第三个文档。它有两句话。", path="extra.txt")
    tokenize("预热")  # initialize jieba once, outside the threads
    directory = tmp_path / "index"
    _open(directory)  # create the schema once
    jobs = [(_open(directory, SlowEmbedder()), load_documents([seeds_copy])),
            (_open(directory, SlowEmbedder()), [*load_documents([seeds_copy]), extra])]
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(index: Index, docs: list[Document]) -> None:
        try:
            barrier.wait()
            ingest(index, docs, batch=4)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    final = _open(directory)
    _check_consistent(final)
    assert [d.doc_id for d in final.documents()] == [*SEED_IDS, "extra"]
    # each chunk was embedded exactly once across both writers: the second saw the first's work
    embedded = sum(index.embedder.passages_embedded for index, _ in jobs)  # type: ignore[attr-defined]
    assert embedded == len(final)
    for index, _ in jobs:
        index.refresh()
        assert index.chunks == final.chunks
