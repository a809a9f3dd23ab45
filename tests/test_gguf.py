"""GGUF assembly from part packages: order, checksum, corrupted and missing parts, the cache."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from rag.errors import ModelError
from rag.models import gguf
from rag.models.gguf import ModelSpec, assemble, installed, model_path, part_paths, sha256_file

PARTS = [b"GGUF" + b"\x01" * 1000, b"\x02" * 3000, b"\x03" * 17]


def _fake_packages(root: Path, prefix: str, parts: list[bytes]) -> tuple[str, ...]:
    """Part packages shaped like the real ones: ``<module>/data/partNN.bin`` + ``get_part_path``."""
    names = []
    for i, data in enumerate(parts, 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\n\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n")
        names.append(pkg.name)
    return tuple(names)


@pytest.fixture
def fake_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelSpec:
    site = tmp_path / "site"
    prefix = f"wenda_fake_part_{tmp_path.name.replace('-', '_')}_"
    modules = _fake_packages(site, prefix, PARTS)
    monkeypatch.syspath_prepend(str(site))
    yield ModelSpec("fake", "fake.gguf", modules, hashlib.sha256(b"".join(PARTS)).hexdigest(), "local")
    for m in modules:
        sys.modules.pop(m, None)


def test_assemble_joins_parts_in_order_and_verifies(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(PARTS):
        files.append(tmp_path / f"p{i}")
        files[-1].write_bytes(data)
    target = assemble(files, tmp_path / "cache" / "m.gguf", hashlib.sha256(b"".join(PARTS)).hexdigest())
    assert target.read_bytes() == b"".join(PARTS)
    assert sha256_file(target) == hashlib.sha256(b"".join(PARTS)).hexdigest()


def test_wrong_order_or_corrupt_part_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    files = []
    for i, data in enumerate(PARTS):
        files.append(tmp_path / f"p{i}")
        files[-1].write_bytes(data)
    good = hashlib.sha256(b"".join(PARTS)).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="SHA-256"):
        assemble(list(reversed(files)), cache / "m.gguf", good)
    files[1].write_bytes(b"\x02" * 2999 + b"\xff")  # one flipped byte
    with pytest.raises(ModelError, match=good):
        assemble(files, cache / "m.gguf", good)
    assert list(cache.iterdir()) == []  # no partial or bad file left behind


def test_model_path_assembles_once_then_reuses_the_cache(fake_spec: ModelSpec, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gguf.MODELS, "fake", fake_spec)
    assert installed(fake_spec)
    told = []
    path = model_path("fake", tmp_path / "cache", on_assemble=lambda spec, t: told.append(t))
    assert path == tmp_path / "cache" / "fake.gguf" and path.read_bytes() == b"".join(PARTS)
    assert told == [path]
    assert model_path("fake", tmp_path / "cache", on_assemble=lambda spec, t: told.append(t)) == path
    assert told == [path]  # cached and verified: not rebuilt


def test_a_tampered_cache_is_rebuilt_from_the_parts(fake_spec: ModelSpec, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gguf.MODELS, "fake", fake_spec)
    path = model_path("fake", tmp_path / "cache")
    path.write_bytes(b"GGUF tampered")
    assert model_path("fake", tmp_path / "cache").read_bytes() == b"".join(PARTS)


def test_a_corrupt_part_package_is_a_model_error(fake_spec: ModelSpec, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(gguf.MODELS, "fake", fake_spec)
    part = Path(part_paths(fake_spec)[2])
    part.write_bytes(b"\x03" * 16 + b"\x00")
    with pytest.raises(ModelError, match="corrupt or not the pinned version"):
        model_path("fake", tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake.gguf").exists()


def test_missing_part_packages_name_the_extra(tmp_path: Path) -> None:
    spec = ModelSpec("nope", "nope.gguf", ("wenda_no_such_part1", "wenda_no_such_part2"), "0" * 64, "local")
    assert not installed(spec)
    with pytest.raises(ModelError, match=r"wenda_no_such_part1.*pip install -e '\.\[local\]'"):
        part_paths(spec)


def test_a_gguf_path_is_checked_not_hashed(tmp_path: Path) -> None:
    good = tmp_path / "mine.gguf"
    good.write_bytes(b"GGUF\x03\x00")
    assert model_path(str(good)) == good
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>")
    with pytest.raises(ModelError, match="not a GGUF"):
        model_path(str(bad))
    with pytest.raises(ModelError, match="no such GGUF"):
        model_path(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match=r"qwen-0\.5b"):
        model_path("qwen-7b")


@pytest.mark.integration
@pytest.mark.parametrize("name", ["qwen-0.5b", "qwen-1.5b"])
def test_real_parts_join_to_the_pinned_checksum(name: str, tmp_path: Path) -> None:
    spec = gguf.MODELS[name]
    if not installed(spec):
        pytest.skip(f"{name} parts not installed: {spec.install_hint}")
    h = hashlib.sha256()
    for part in part_paths(spec):
        h.update(part.read_bytes())
    assert h.hexdigest() == spec.sha256
    path = model_path(name)  # the user cache: assembled once, verified on every load
    assert sha256_file(path) == spec.sha256 and path.read_bytes()[:4] == b"GGUF"
