"""Collections, filters and tags at the library level (``rag.store.collections``, ``rag.store.filters``, tags
through ``rag.ingest``), on real FAISS, BM25 and SQLite with the fake embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEmbedder

from rag.answer.generate import load_generator
from rag.errors import InputError, NotFoundError
from rag.ingest import ingest, ingest_paths, wipe
from rag.ingest.documents import Document
from rag.qa import ask
from rag.store.collections import (
    DEFAULT,
    check_name,
    collection_dir,
    create_collection,
    drop_collection,
    exists,
    list_collections,
    open_collection,
)
from rag.store.filters import Filter, clean_tags
from rag.store.index import Index

BAD_NAMES = ["..", ".", "a/b", "../etc", ".x", "Upper", "x" * 65, "", "a b", "-a", "_a", "a\\b", "*",
             "hr\n", "名字", "a.b"]
GOOD_NAMES = ["a", "hr", "policy-2024", "x_1", "x" * 64, "0abc", DEFAULT]


# ---- names and the life of a collection --------------------------------------------------------
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_before_touching_a_path(tmp_path: Path, fake_embedder: FakeEmbedder,
                                                      name: str) -> None:
    root = tmp_path / "index"
    with pytest.raises(InputError, match="invalid collection name"):
        check_name(name)
    for call in (lambda: collection_dir(root, name), lambda: create_collection(root, name, fake_embedder),
                 lambda: open_collection(root, name, fake_embedder, create=True),
                 lambda: drop_collection(root, name)):
        with pytest.raises(InputError):
            call()
    assert not root.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(tmp_path: Path, name: str) -> None:
    assert check_name(name) == name
    expected = tmp_path if name == DEFAULT else tmp_path / "collections" / name
    assert collection_dir(tmp_path, name) == expected


def test_create_list_drop(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    root = tmp_path / "index"
    Index.open(root, fake_embedder)
    assert list_collections(root) == [DEFAULT]
    hr = create_collection(root, "hr", fake_embedder)
    ingest(hr, [Document.from_text("leave", "员工每年有十五天带薪年假。")])
    create_collection(root, "ops", fake_embedder)
    (root / "collections" / "Junk").mkdir()  # not a collection: bad name, no docstore
    (root / "collections" / "empty").mkdir()
    assert list_collections(root) == [DEFAULT, "hr", "ops"]
    assert exists(root, "hr") and not exists(root, "empty") and exists(root, DEFAULT)
    with pytest.raises(InputError, match="exists already"):
        create_collection(root, "hr", fake_embedder)
    with pytest.raises(NotFoundError, match="no collection 'nope'"):
        open_collection(root, "nope", fake_embedder)
    assert open_collection(root, "hr", fake_embedder).text("leave") == "员工每年有十五天带薪年假。"

    drop_collection(root, "hr")
    assert list_collections(root) == [DEFAULT, "ops"] and not exists(root, "hr")
    assert sorted(p.name for p in (root / "collections").iterdir()) == ["Junk", "empty", "ops"]
    with pytest.raises(NotFoundError):
        drop_collection(root, "hr")
    with pytest.raises(InputError, match="default collection cannot be dropped"):
        drop_collection(root, DEFAULT)
    assert (root / "docstore.sqlite").is_file()


def test_wipe_of_the_default_keeps_the_other_collections(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    root = tmp_path / "index"
    default = Index.open(root, fake_embedder)
    ingest(default, [Document.from_text("a", "默认集合里的一份文件。")])
    hr = create_collection(root, "hr", fake_embedder)
    ingest(hr, [Document.from_text("b", "人事集合里的一份文件。")])
    wipe(root)
    assert list_collections(root) == [DEFAULT, "hr"]
    assert len(Index.open(root, fake_embedder)) == 0
    kept = open_collection(root, "hr", fake_embedder)
    assert len(kept) > 0 and kept.text("b") == "人事集合里的一份文件。"


# ---- filters --------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [
    {"nope": 1}, {"doc_ids": "a"}, {"doc_ids": [1]}, {"tags_any": "x"}, {"tags_all": [None]},
    {"path_prefix": 3}, {"tags_any": ["a,b"]}, {"tags_all": ["x" * 65]}, {"tags_any": ['say "hi"']},
    ["tags_any"], "hr", 5, {"doc_ids": ""}, {"tags_any": 0}, {"path_prefix": False},
])
def test_filter_parse_errors(raw: Any) -> None:
    with pytest.raises(InputError):
        Filter.parse(raw)


def test_filter_parse_cleans_and_round_trips() -> None:
    assert Filter.parse(None) == Filter() and not Filter.parse({})
    where = Filter.parse({"doc_ids": ["b", "a", "b"], "tags_any": [" x  y ", "a", "a", ""],
                          "path_prefix": "policy/"})
    assert where.doc_ids == ("b", "a") and where.tags_any == ("a", "x y") and where
    assert Filter.parse(where.to_dict()) == where and Filter.parse(where) is where
    assert clean_tags(["b", " a", "b"]) == ("a", "b")


QUESTION = "员工的年假有几天?"
UNTAGGED = "员工的年假有几天？员工的年假有几天：年假{i}天。"  # near copies of the question
TAGGED = "人事制度第{i}条：正式员工每年享有带薪休假，具体天数按工龄计算，为{i}至十五天。"


@pytest.fixture
def tagged_index(tmp_path: Path, fake_embedder: FakeEmbedder) -> Index:
    """Untagged documents that match the question better than the six tagged ``hr`` ones."""
    index = Index.open(tmp_path / "index", fake_embedder)
    ingest(index, [Document.from_text(f"noise/{i}", UNTAGGED.format(i=i)) for i in range(10)])
    ingest(index, [Document.from_text(f"policy/hr{i}", TAGGED.format(i=i)) for i in range(6)], tags=["hr"])
    ingest(index, [Document.from_text("policy/ops", "运维值班制度：每周轮换一次。")], tags=["ops", "hr-old"])
    return index


def doc_ids(index: Index, where: Filter | None, k: int = 5) -> list[str]:
    answer = ask(index, QUESTION, top_k=k, where=where, generator=load_generator("extractive"))
    return [p.doc_id for p in answer.passages]


def test_a_tag_filter_still_returns_k_tagged_passages(tagged_index: Index) -> None:
    unfiltered = doc_ids(tagged_index, None)
    assert sum(d.startswith("noise/") for d in unfiltered) >= 3  # the untagged ones do match better
    tagged = doc_ids(tagged_index, Filter(tags_any=("hr",)))
    assert len(tagged) == 5 and all(d.startswith("policy/hr") for d in tagged)
    assert doc_ids(tagged_index, Filter(tags_all=("hr", "ops"))) == []
    assert doc_ids(tagged_index, Filter(tags_any=("ops",))) == ["policy/ops"]


def test_doc_ids_and_path_prefix(tagged_index: Index) -> None:
    assert set(doc_ids(tagged_index, Filter(doc_ids=("policy/hr1", "noise/3", "missing")))) == {
        "policy/hr1", "noise/3"}
    by_prefix = doc_ids(tagged_index, Filter(path_prefix="policy/"), k=10)
    assert len(by_prefix) == 7 and all(d.startswith("policy/") for d in by_prefix)


def test_the_refusal_judge_sees_only_filtered_passages(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    index = Index.open(tmp_path / "index", fake_embedder)
    ingest(index, [Document.from_text("secret", "福建海峡实验室位于福州市仓山区，成立于二〇二三年三月。")],
           tags=["lab"])
    ingest(index, [Document.from_text("other", "闽江口湿地公园位于长乐区，是候鸟的栖息地。")], tags=["park"])
    extractive = load_generator("extractive")
    question = "福建海峡实验室位于哪里?"
    open_answer = ask(index, question, generator=extractive)
    assert not open_answer.refused and "仓山" in open_answer.answer
    filtered = ask(index, question, generator=extractive, where=Filter(tags_any=("park",)))
    assert filtered.refused and not filtered.citations
    assert {p.doc_id for p in filtered.passages} <= {"other"}
    assert "仓山" not in filtered.model_dump_json()


# ---- tags through ingest --------------------------------------------------------------------
def test_tags_given_and_from_front_matter_then_retagged_without_embedding(
        tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text("---\ntags: [a, b]\n---\n# 年假\n\n员工每年有十五天带薪年假。\n")
    (folder / "plain.txt").write_text("报销需在三十天内提交。\n")
    index = Index.open(tmp_path / "index", fake_embedder)
    _, report = ingest_paths(index, [folder], tags=["2024"])
    assert sorted(report.added) == ["leave", "plain"]

    def tags() -> dict[str, tuple[str, ...]]:
        return {d.doc_id: d.tags for d in index.documents()}

    assert tags() == {"leave": ("2024", "a", "b"), "plain": ("2024",)}
    assert all(d.ingested_at > 0 for d in index.documents())
    assert index.loaded.docs["leave"].tags == ("2024", "a", "b")
    embedded, generation = fake_embedder.passages_embedded, index.generation

    _, report = ingest_paths(index, [folder], tags=["2025"])
    assert sorted(report.retagged) == ["leave", "plain"] and not report.added and not report.updated
    assert fake_embedder.passages_embedded == embedded  # retagging embeds nothing
    assert tags() == {"leave": ("2025", "a", "b"), "plain": ("2025",)}
    assert index.generation > generation and index.loaded.docs["plain"].tags == ("2025",)
    _, report = ingest_paths(index, [folder])  # no tags given: they stay
    assert not report.changed and tags()["plain"] == ("2025",)
    answer = ask(index, "报销需在几天内提交?", where=Filter(tags_any=("2025",)),
                 generator=load_generator("extractive"))
    assert answer.citations and answer.citations[0].tags == ["2025"]
