"""``rag ingest/ask --collection`` with tags and filters, ``rag collections`` and ``rag keys``:
the typer app in-process (click's ``CliRunner``) on real files and a real index, with the fake
embedder at the model seam; two subprocess runs check the one-line errors of ``rag.cli.main``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SEEDS, FakeEmbedder
from typer.testing import CliRunner, Result

from rag.cli import app
from rag.errors import ConfigError, InputError, NotFoundError
from rag.keys import Keys
from rag.schema import Answer
from rag.store.collections import list_collections, open_collection

ROOT = Path(__file__).resolve().parent.parent
LEAVE = "---\ntitle: 休假制度\ntags: [hr]\n---\n年假为每年十五天，由部门经理审批。\n"
PAY = "工资每月十日发放，年终奖在一月发放。\n"
TRAVEL = "出差补贴每天三百元，年假期间不发放。\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: FakeEmbedder) -> Path:
    """A fresh RAG_INDEX_DIR (returned); every other RAG_* variable unset; the fake embedder."""
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    index_dir = tmp_path / "index"
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("RAG_SEEDS_DIR", str(SEEDS))
    monkeypatch.setenv("RAG_GENERATOR", "extractive")
    monkeypatch.setattr("rag.models.embed.load_embedder", lambda name: fake_embedder)
    monkeypatch.setattr("rag.bootstrap.load_embedder", lambda name: fake_embedder)
    return index_dir


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "hr-docs"
    (folder / "policy").mkdir(parents=True)
    (folder / "policy" / "leave.md").write_text(LEAVE, encoding="utf-8")
    (folder / "pay.txt").write_text(PAY, encoding="utf-8")
    (folder / "travel.txt").write_text(TRAVEL, encoding="utf-8")
    return folder


def rag(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = rag(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def counts(stdout: str) -> dict[str, int]:
    found = {}
    for line in stdout.splitlines():
        label, _, rest = line.strip().partition(":")
        if label in ("added", "updated", "skipped", "removed", "retagged"):
            found[label] = int(rest.split()[0])
    return found


def tags_of(index_dir: Path, collection: str, fake: FakeEmbedder) -> dict[str, tuple[str, ...]]:
    return {d.doc_id: d.tags for d in open_collection(index_dir, collection, fake).documents()}


def ask_json(*args: str) -> Answer:
    return Answer.model_validate_json(ok("ask", "--json", *args).stdout)


# ---- ingest and ask in a collection ---------------------------------------------------------------
def test_ingest_creates_the_collection_and_tags(env: Path, docs: Path, fake_embedder: FakeEmbedder) -> None:
    first = ok("ingest", "--collection", "hr", "--tag", "2024", str(docs))
    assert "creating collection 'hr'" in first.stderr
    assert counts(first.stdout) == {"added": 3, "updated": 0, "skipped": 0, "removed": 0, "retagged": 0}
    assert list_collections(env) == ["default", "hr"]
    assert tags_of(env, "hr", fake_embedder) == {"policy/leave": ("2024", "hr"), "pay": ("2024",),
                                                "travel": ("2024",)}
    assert not (env / "docstore.sqlite").exists()  # the default collection was not touched

    again = ok("ingest", "-c", "hr", str(docs))  # no --tag: tags kept, nothing re-embedded
    assert "creating" not in again.stderr
    assert counts(again.stdout)["skipped"] == 3 and counts(again.stdout)["retagged"] == 0

    one = ok("ingest", "-c", "hr", "--tag", "2025", "--tag", "draft", str(docs / "pay.txt"))
    assert counts(one.stdout) == {"added": 0, "updated": 0, "skipped": 0, "removed": 0, "retagged": 1}
    assert "0 embedded" in one.stdout  # new tags, same text: nothing embedded again
    assert tags_of(env, "hr", fake_embedder) == {"policy/leave": ("2024", "hr"),
                                                "pay": ("2025", "draft"), "travel": ("2024",)}
    every = ok("ingest", "-c", "hr", "--tag", "2025", str(docs))
    assert counts(every.stdout)["retagged"] == 3
    assert tags_of(env, "hr", fake_embedder) == {"policy/leave": ("2025", "hr"),  # front matter's stays
                                                "pay": ("2025",), "travel": ("2025",)}


def test_ask_filters_by_tag_doc_and_path(env: Path, docs: Path) -> None:
    ok("ingest", "-c", "hr", str(docs))
    ok("ingest", "-c", "hr", "--tag", "pay", str(docs / "pay.txt"))
    ok("ingest", "-c", "hr", "--tag", "travel", "--tag", "money", str(docs / "travel.txt"))
    question = "年假和工资怎么安排?"

    unfiltered = ask_json("-c", "hr", "--top-k", "3", question)
    assert {p.doc_id for p in unfiltered.passages} == {"pay", "travel", "policy/leave"}
    for args, allowed in ((["--tag", "travel"], {"travel"}),
                          (["--tag", "travel", "--tag", "hr"], {"travel", "policy/leave"}),
                          (["--all-tags", "travel", "--all-tags", "money"], {"travel"}),
                          (["--doc", "pay"], {"pay"}),
                          (["--path", "policy/"], {"policy/leave"})):
        answer = ask_json("-c", "hr", *args, question)
        assert answer.passages and {p.doc_id for p in answer.passages} == allowed, args
        assert {c.doc_id for c in answer.citations} <= allowed
    cited = ask_json("-c", "hr", "--tag", "hr", "年假为每年几天?")
    assert cited.citations and cited.citations[0].tags == ["hr"]
    nothing = ask_json("-c", "hr", "--tag", "nope", question)
    assert nothing.refused and nothing.passages == []

    plain = ok("ask", "-c", "hr", "--doc", "policy/leave", "年假为每年几天?").stdout  # not --json
    assert "十五天" in plain and "policy/leave" in plain


def test_chat_in_a_collection_with_a_filter(env: Path, docs: Path) -> None:
    ok("ingest", "-c", "hr", str(docs))
    session = ok("chat", "-c", "hr", "--doc", "travel", input="年假期间发补贴吗?\n出差补贴多少?\n\n").stdout
    assert "3 passages loaded" in session
    assert "travel" in session and "policy/leave" not in session and "pay" not in session


def test_ask_in_a_missing_collection_or_with_a_bad_filter(env: Path) -> None:
    result = rag("ask", "-c", "nope", "问题")
    assert isinstance(result.exception, NotFoundError) and "no collection 'nope'" in str(result.exception)
    result = rag("ask", "-c", "Bad/Name", "问题")
    assert isinstance(result.exception, InputError) and "invalid collection name" in str(result.exception)
    result = rag("ask", "--tag", "a,b", "问题")
    assert isinstance(result.exception, InputError) and "invalid tag" in str(result.exception)
    assert not list(env.glob("collections/*"))


def test_default_collection_filters_too(env: Path) -> None:
    seed = sorted(p.stem for p in SEEDS.iterdir())[0]
    answer = ask_json("--doc", seed, "第九次国家级新区工作经验交流会在哪里召开?")  # builds from seeds/
    assert answer.passages and {p.doc_id for p in answer.passages} == {seed}
    assert (env / "docstore.sqlite").is_file() and list_collections(env) == ["default"]


# ---- rag collections --------------------------------------------------------------------------------
def test_collections_create_list_drop(env: Path, docs: Path) -> None:
    assert json.loads(ok("collections", "list", "--json").stdout) == {
        "collections": [{"name": "default", "documents": 0, "chunks": 0}]}
    assert not env.exists()  # listing created nothing
    assert "created collection 'hr'" in ok("collections", "create", "hr").stdout
    result = rag("collections", "create", "hr")
    assert isinstance(result.exception, InputError) and "exists already" in str(result.exception)
    ok("ingest", "-c", "policy", str(docs))
    listed = json.loads(ok("collections", "list", "--json").stdout)["collections"]
    assert [(c["name"], c["documents"]) for c in listed] == [("default", 0), ("hr", 0), ("policy", 3)]
    assert listed[2]["chunks"] >= 3
    table = ok("collections", "list").stdout.splitlines()
    assert [line.split()[:2] for line in table] == [["default", "0"], ["hr", "0"], ["policy", "3"]]


def test_drop_asks_for_the_name(env: Path, docs: Path) -> None:
    ok("ingest", "-c", "policy", str(docs))
    kept = rag("collections", "drop", "policy", input="polic\n")
    assert kept.exit_code == 1 and "not dropped" in kept.stderr
    assert "Type its name to confirm" in kept.output
    assert list_collections(env) == ["default", "policy"]
    dropped = ok("collections", "drop", "policy", input="policy\n")
    assert "dropped collection 'policy'" in dropped.stdout
    assert list_collections(env) == ["default"]

    ok("collections", "create", "hr")
    assert "dropped" in ok("collections", "drop", "hr", "--yes").stdout  # no question asked
    assert list_collections(env) == ["default"]


@pytest.mark.parametrize(("name", "error", "message"), [
    ("default", InputError, "the default collection cannot be dropped"),
    ("nope", NotFoundError, "no collection 'nope'"),
    ("../etc", InputError, "invalid collection name"),
])
def test_drop_refuses_before_asking(env: Path, name: str, error: type[Exception], message: str) -> None:
    result = rag("collections", "drop", name, input="\n")
    assert isinstance(result.exception, error) and message in str(result.exception)
    assert "confirm" not in result.output


# ---- rag keys ---------------------------------------------------------------------------------------
def test_keys_add_list_remove(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.json"
    monkeypatch.setenv("RAG_KEYS_FILE", str(path))
    added = ok("keys", "add", "hr-bot", "--grant", "hr:read", "--grant", "policy:read,write")
    secret = added.stdout.strip()
    assert secret.startswith("wk_") and added.stdout == secret + "\n"  # alone on stdout
    assert "will not be shown again" in added.stderr and secret not in added.stderr
    ok("keys", "add", "ops", "--grant", "*:admin")
    assert secret not in path.read_text(encoding="utf-8")
    key = Keys.load(path).authenticate(f"Bearer {secret}")
    assert key is not None and key.name == "hr-bot" and key.can("write", "policy")
    assert not key.can("write", "hr")

    listing = ok("keys", "list").stdout
    assert "hr-bot" in listing and "hr:read policy:read,write" in listing and "*:admin" in listing
    assert secret[:7] in listing
    as_json = ok("keys", "list", "--json").stdout
    for shown in (listing, as_json):
        assert secret not in shown and "sha256" not in shown and "hash" not in shown
    assert [k["name"] for k in json.loads(as_json)["keys"]] == ["hr-bot", "ops"]

    assert "removed key 'hr-bot'" in ok("keys", "remove", "hr-bot").stdout
    assert Keys.load(path).authenticate(f"Bearer {secret}") is None
    result = rag("keys", "remove", "hr-bot")
    assert isinstance(result.exception, NotFoundError) and "no key 'hr-bot'" in str(result.exception)


def test_keys_need_a_file(env: Path, tmp_path: Path) -> None:
    result = rag("keys", "add", "bot", "--grant", "hr:read")
    assert isinstance(result.exception, ConfigError) and "RAG_KEYS_FILE" in str(result.exception)
    path = tmp_path / "elsewhere.json"
    assert ok("keys", "add", "bot", "--grant", "hr:read", "--file", str(path)).stdout.startswith("wk_")
    assert "bot" in ok("keys", "list", "--file", str(path)).stdout
    result = rag("keys", "add", "bot2", "--grant", "hr:delete", "--file", str(path))
    assert isinstance(result.exception, InputError) and "bad right 'delete'" in str(result.exception)
    result = rag("keys", "add", "bot", "--grant", "hr:read", "--file", str(path))
    assert isinstance(result.exception, InputError) and "already exists" in str(result.exception)


# ---- the console entry point: errors are one line, exit 1 ---------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (["collections", "drop", "default", "--yes"], "the default collection cannot be dropped"),
    (["keys", "add", "bot", "--grant", "hr:read"], "RAG_KEYS_FILE"),
])
def test_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    environ.update(RAG_INDEX_DIR=str(tmp_path / "index"), PYTHONIOENCODING="utf-8", COLUMNS="200")
    result = subprocess.run([sys.executable, "-m", "rag", *args], cwd=ROOT, env=environ,
                            capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
