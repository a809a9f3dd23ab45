"""``rag ingest --ray``: parsing and embedding on Ray Data leave the index exactly as an
in-process ingest of the same files does, and unchanged files cost no Ray work at all.

One local Ray cluster (2 CPUs) serves the module; ``ingest_ray`` finds it initialized and uses
it. The fake embedder of conftest reaches the workers pickled by value (they cannot import
``conftest``). The CLI tests run ``python -m rag`` with the real e5 model over two short files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration  # a Ray cluster starts per module (~10 s), the CLI tests load e5
ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install -e '.[scale]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install -e '.[scale]'")

from conftest import SEEDS, FakeEmbedder  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from rag.errors import ConfigError  # noqa: E402
from rag.ingest import ingest_paths  # noqa: E402
from rag.ingest.distributed import ingest_ray, require_ray  # noqa: E402
from rag.store.index import Index  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "documents"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster for the module; yields its address (for ``--ray-address``)."""
    from ray import cloudpickle

    ray.init(num_cpus=2, object_store_memory=256 << 20, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    cloudpickle.register_pickle_by_value(sys.modules[FakeEmbedder.__module__])
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[FakeEmbedder.__module__])
        ray.shutdown()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The seeds, a PDF, a Markdown note and a PDF that cannot be parsed."""
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    shutil.copy(FIXTURES / "two_pages.pdf", docs / "brief.pdf")
    (docs / "notes.md").write_text("# 笔记\n西咸新区位于西安和咸阳之间。今年新增企业三千家。",
                                   encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    return docs


def pair(tmp_path: Path) -> tuple[Index, Index]:
    """Two empty indexes: one ingested in process, one on Ray."""
    return Index.open(tmp_path / "local", FakeEmbedder()), Index.open(tmp_path / "ray", FakeEmbedder())


def state(index: Index) -> tuple[list[Any], list[Any], np.ndarray]:
    """What an index holds, ids and times aside: documents, chunks per document, their vectors."""
    docs = [(d.doc_id, d.sha256, d.chunks, d.tags, d.title, d.media_type, d.pages)
            for d in index.documents()]
    ids = sorted(index.chunks, key=lambda i: (index.chunks[i].doc_id, index.chunks[i].ordinal))
    chunks = [index.chunks[i] for i in ids]
    return docs, chunks, index.vectors(ids)


def assert_same(a: Index, b: Index) -> None:
    docs_a, chunks_a, vectors_a = state(a)
    docs_b, chunks_b, vectors_b = state(b)
    assert docs_a == docs_b and chunks_a == chunks_b
    np.testing.assert_allclose(vectors_a, vectors_b, atol=1e-6)


def on_ray(index: Index, folder: Path, **options: Any) -> Any:
    return ingest_ray(index, [folder], embedder=FakeEmbedder, **options)


def test_ray_ingest_equals_in_process(cluster: str, folder: Path, tmp_path: Path) -> None:
    local, remote = pair(tmp_path)
    _, expected = ingest_paths(local, [folder])
    report = on_ray(remote, folder)
    assert sorted(report.added) == sorted(expected.added) == ["000_6326ffad47e9d9fc",
                                                             "002_b6fa2ad0b5cb2574", "brief", "notes"]
    assert report.chunks_embedded == expected.chunks_embedded > 0
    assert report.failed == expected.failed and [Path(f.path).name for f in report.failed] == ["broken.pdf"]
    assert report.notes == expected.notes
    assert_same(local, remote)


def test_unchanged_files_cost_no_ray_work(cluster: str, folder: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "broken.pdf").unlink()  # a file that fails is tried again each time
    index = Index.open(tmp_path / "index", FakeEmbedder())
    on_ray(index, folder)
    generation = index.generation
    monkeypatch.setattr(ray.data, "from_items", lambda *a, **k: pytest.fail("a Ray job ran"))
    again = on_ray(index, folder)
    assert sorted(again.skipped) == ["000_6326ffad47e9d9fc", "002_b6fa2ad0b5cb2574", "brief", "notes"]
    assert again.chunks_embedded == again.chunks_reused == 0 and not again.changed
    assert index.current_generation() == generation


def test_a_second_ingest_updates_retags_and_prunes_as_in_process(cluster: str, folder: Path,
                                                                 tmp_path: Path) -> None:
    """A changed file re-embeds only its changed chunks; new tags and ``prune`` give the same
    retagged and removed documents as in process, without embedding anything else."""
    local, remote = pair(tmp_path)
    ingest_paths(local, [folder])
    on_ray(remote, folder)
    seed = folder / "000_6326ffad47e9d9fc.txt"
    seed.write_text(seed.read_text(encoding="utf-8") + "\n新增的一段：园区今年再添两家研究院。",
                    encoding="utf-8")
    (folder / "notes.md").unlink()
    _, expected = ingest_paths(local, [folder], prune=True, tags=["hr"])
    report = on_ray(remote, folder, prune=True, tags=["hr"])
    assert report.updated == expected.updated == ["000_6326ffad47e9d9fc"]
    assert report.removed == expected.removed == ["notes"]
    assert sorted(report.retagged) == sorted(expected.retagged) == ["002_b6fa2ad0b5cb2574", "brief"]
    assert 0 < report.chunks_embedded == expected.chunks_embedded < report.chunks_reused
    assert report.chunks_reused == expected.chunks_reused
    assert_same(local, remote)


def test_without_ray_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from rag.cli import app

    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[scale\]'"):
        require_ray()
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    result = CliRunner().invoke(app, ["ingest", str(SEEDS), "--ray", "--rebuild"])
    assert isinstance(result.exception, ConfigError)
    assert not (tmp_path / "index").exists()  # refused before anything was touched


def rag(*args: str, index_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_INDEX_DIR=str(index_dir), RAG_EMBEDDER="e5", PYTHONIOENCODING="utf-8",
               COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=240, check=False)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "a.md").write_text("西咸新区位于西安和咸阳之间。", encoding="utf-8")
    (docs / "b.txt").write_text("第九次国家级新区工作经验交流会在西咸新区召开。", encoding="utf-8")
    return docs


@pytest.mark.integration
def test_cli_ingest_on_a_local_ray_cluster(notes: Path, tmp_path: Path) -> None:
    first = rag("ingest", str(notes), "--ray", "--workers", "1", index_dir=tmp_path / "index")
    assert first.returncode == 0, first.stderr
    assert "added: 2" in first.stdout and "2 embedded" in first.stdout, first.stdout
    assert "Traceback" not in first.stderr


@pytest.mark.integration
def test_cli_ingest_on_an_existing_cluster(cluster: str, notes: Path, tmp_path: Path) -> None:
    first = rag("ingest", str(notes), "--ray-address", cluster, index_dir=tmp_path / "index")
    assert first.returncode == 0, first.stderr
    assert "added: 2" in first.stdout and "2 embedded" in first.stdout, first.stdout
