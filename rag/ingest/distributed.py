"""Batch ingest on Ray Data (``rag ingest --ray``): parse and embed on a cluster, commit here.

Why: embedding is most of an ingest's time and parsing (PDFs, OCR) the rest; both are per-file
or per-chunk work that spreads over cores and machines, while the commit must stay one
transaction of the index's backend, under its writer lock. So this process (the driver) holds
``index.writing()``, decides what changed by the rules of ``rag.ingest.pipeline``, and runs two
Ray Data jobs:

1. parse: ``from_items`` of the files whose bytes (or tags) changed → ``map`` load + normalize +
   chunk. Unchanged files (``pipeline.unchanged``) are never sent, so never parsed; a file that
   cannot be parsed comes back as its error and lands in ``report.failed``.
2. embed: the chunks whose text has no stored vector (``known_vectors``) → ``map_batches`` with
   an actor class, so each worker loads the embedder once → vectors put back in chunk order.

Two jobs rather than one stream because the reuse filter needs the index, which only the driver
holds, and can only be asked once chunk texts are known. Between them ``plan`` builds the
``Change`` from the parsed documents (retagged, rehashed, removed with ``prune``: the same code),
so the index ends as an in-process ``ingest_paths`` of the same files leaves it. Ray is started
only when a file must be parsed: a re-ingest of unchanged files starts no cluster.

Workers read the files by path and load the embedder by name: on a remote cluster (``address``)
the paths must be readable at the same place on every worker (a shared volume), and the workers
need wenda and the model installed.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ConfigError, DocumentError, ModelError
from rag.ingest.documents import Document, SourceFile, find_files
from rag.ingest.pipeline import (
    IngestReport,
    Progress,
    Reading,
    plan,
    reuse_vectors,
    split_document,
    unchanged,
)
from rag.loaders import Limits
from rag.models.embed import Embedder, load_embedder
from rag.store.backend import SearchBackend
from rag.store.filters import clean_tags
from rag.text.chunk import Chunk
from rag.text.normalize import Normalized

__all__ = ["OBJECT_STORE_BYTES", "EmbedderSpec", "embed_on_ray", "ingest_ray", "require_ray"]

EmbedderSpec = str | Callable[[], Embedder]  # a name for ``load_embedder``, or a picklable factory
OBJECT_STORE_BYTES = 256 << 20  # a local cluster's object store: fits a 2-core CI machine
INSTALL = "pip install -e '.[scale]'"


def require_ray() -> None:
    """Fail early, with the fix, when Ray Data is not installed (an optional extra)."""
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"ingest on Ray needs Ray Data (ray[data]): {INSTALL}") from exc


@contextmanager
def _cluster(address: str | None, workers: int) -> Iterator[None]:
    """Ray for this ingest: one already initialized in this process is used as it is (and left
    running); otherwise a local cluster of ``workers`` CPUs (``address`` None or "local") or a
    connection to ``address`` ("auto", "ray://head:10001"), shut down afterwards."""
    import ray
    import ray.data

    # the caller shows its own progress; Ray Data's bars would garble it (and say so, once)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    if ray.is_initialized():
        yield
        return
    local = address in (None, "", "local")
    options: dict[str, Any] = ({"num_cpus": workers, "object_store_memory": OBJECT_STORE_BYTES,
                                "include_dashboard": False} if local else {})
    ray.init(address="local" if local else address, log_to_driver=False,
             logging_level=logging.WARNING, ignore_reinit_error=True, **options)
    try:
        yield
    finally:
        ray.shutdown()


def _parse_row(row: dict[str, Any], *, limits: Limits | None, chunk_size: int, overlap: int
               ) -> dict[str, Any]:
    """In a worker: load, normalize and chunk one file; the result pickled, or the error."""
    file = SourceFile(row["doc_id"], Path(row["path"]), row["sha256"])
    try:
        doc = file.load(limits)
    except DocumentError as exc:
        return {"i": row["i"], "parsed": b"", "error": str(exc)}
    norm, chunks = split_document(doc, chunk_size, overlap)
    return {"i": row["i"], "parsed": pickle.dumps((doc, norm, chunks)), "error": ""}


@dataclass(frozen=True)
class _Parsed(SourceFile):
    """A file a worker parsed: ``load`` gives its document, or raises its error, so ``plan``
    treats it as it treats a file it parses itself (notes, failures, retags, rehashes)."""

    document: Document | None = None
    error: str = ""

    def load(self, limits: Limits | None = None) -> Document:
        if self.document is None:
            raise DocumentError(self.error)
        return self.document


def _parse_on_ray(files: Sequence[SourceFile], *, limits: Limits | None, chunk_size: int,
                  overlap: int, reading: Reading | None
                  ) -> tuple[dict[str, _Parsed], dict[str, tuple[Normalized, list[Chunk]]]]:
    """The files parsed by the cluster (by doc id), and their normalized text and chunks."""
    import ray
    import ray.data

    rows = [{"i": i, "doc_id": f.doc_id, "path": str(f.path), "sha256": f.sha256}
            for i, f in enumerate(files)]
    parse = partial(_parse_row, limits=limits, chunk_size=chunk_size, overlap=overlap)
    blocks = min(len(rows), 4 * max(1, int(ray.cluster_resources().get("CPU", 1))))
    parsed: dict[str, _Parsed] = {}
    chunked: dict[str, tuple[Normalized, list[Chunk]]] = {}
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map(parse)
    for done, row in enumerate(dataset.iter_rows(), 1):
        file = files[int(row["i"])]
        if row["error"]:
            parsed[file.doc_id] = _Parsed(file.doc_id, file.path, file.sha256, error=str(row["error"]))
        else:
            doc, norm, chunks = pickle.loads(row["parsed"])
            parsed[file.doc_id] = _Parsed(file.doc_id, file.path, file.sha256, doc)
            chunked[file.doc_id] = (norm, chunks)
        if reading:
            reading(done, len(files), str(file.path))
    return parsed, chunked


class _Embedding:
    """A Ray Data actor: loads the embedder once per worker, then embeds batches of chunk texts
    (each vector comes back with the row's chunk position, and the model's name to check)."""

    def __init__(self, embedder: EmbedderSpec) -> None:
        self.embedder = load_embedder(embedder) if isinstance(embedder, str) else embedder()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.embedder.embed_passages([str(t) for t in batch["text"]])
        return {"i": batch["i"], "vector": np.asarray(vectors, dtype=np.float32),
                "model": np.array([self.embedder.name] * len(batch["i"]))}


def embed_on_ray(index: SearchBackend, chunks: list[Chunk], report: IngestReport, *,
                 embedder: EmbedderSpec, workers: int = 2, batch: int = 32,
                 progress: Progress | None = None) -> np.ndarray:
    """Vectors for ``chunks`` (a ``pipeline.Embed``): stored ones reused, the others embedded
    by ``workers`` actors, ``batch`` texts a call, and put back in chunk order. Raises
    ``ModelError`` when the workers' model is not the index's (its vectors would not compare)."""
    import ray.data

    vectors, positions = reuse_vectors(index, chunks, report)
    todo = [{"i": i, "text": chunks[i].text} for i in positions]
    if not todo:
        return vectors
    if progress:
        progress(0, len(todo))
    blocks = min(-(-len(todo) // batch), 8 * workers)  # enough for every worker, and for progress
    embedded = ray.data.from_items(todo, override_num_blocks=blocks).map_batches(
        _Embedding, fn_constructor_kwargs={"embedder": embedder}, batch_size=batch,
        compute=ray.data.ActorPoolStrategy(size=workers), batch_format="numpy")
    for out in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        wrong = set(out["model"].tolist()) - {index.embedder.name}
        if wrong or out["vector"].shape[1:] != (index.embedder.dim,):
            raise ModelError(f"the Ray workers embed with {sorted(wrong)} (dim {out['vector'].shape[1:]}),"
                             f" the index with {index.embedder.name!r} (dim {index.embedder.dim})")
        vectors[out["i"]] = out["vector"]
        report.chunks_embedded += len(out["i"])
        if progress:
            progress(report.chunks_embedded, len(todo))
    if report.chunks_embedded != len(todo):
        raise ModelError(f"the Ray job returned {report.chunks_embedded} of {len(todo)} vectors")
    return vectors


def ingest_ray(index: SearchBackend, paths: Sequence[str | Path], *, address: str | None = None,
               workers: int = 2, batch: int = 32, embedder: EmbedderSpec | None = None,
               prune: bool = False, chunk_size: int = 240, overlap: int = 1,
               tags: Sequence[str] | None = None, limits: Limits | None = None,
               progress: Progress | None = None, reading: Reading | None = None) -> IngestReport:
    """``ingest_paths`` with parsing and embedding on Ray (see the module docstring); same
    options, same report, same resulting index. ``address``: None for a local cluster of
    ``workers`` CPUs, or an existing cluster's ("auto", "ray://head:10001"). ``embedder``: its
    name (workers load it themselves) or a picklable factory; by default the index's name."""
    require_ray()
    started = time.perf_counter()
    make = index.embedder.name if embedder is None else embedder
    files, passed_over = find_files(paths)
    given = None if tags is None else clean_tags(tags)
    report = IngestReport()
    with ExitStack() as stack, index.writing():
        stored = index.sources()
        todo = [f for f in files if not unchanged(f, stored, given)]
        items: list[SourceFile] = list(files)
        chunked: dict[str, tuple[Normalized, list[Chunk]]] = {}
        if todo:
            stack.enter_context(_cluster(address, workers))
            parsed, chunked = _parse_on_ray(todo, limits=limits, chunk_size=chunk_size,
                                            overlap=overlap, reading=reading)
            items = [parsed.get(f.doc_id, f) for f in files]
        change = plan(index, items, report, prune=prune, chunk_size=chunk_size, overlap=overlap,
                      limits=limits, tags=tags, chunked=chunked, stored=stored)
        change.vectors = embed_on_ray(index, change.chunks(), report, embedder=make,
                                      workers=workers, batch=batch, progress=progress)
        index.commit(change)
    report.failed[:0] = passed_over
    report.seconds = time.perf_counter() - started
    return report
