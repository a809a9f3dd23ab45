"""Ingest on Ray Data vs in process: chunks per second per core, on the same files, in one run.

    python -m evals.raybench [--docs 300] [--workers 2] [--embedder e5]

Corpus: CMRC 2018 and DRCD dev paragraphs (half each), written as .txt files to a temporary
folder. Each path builds its own empty index from them, the way ``rag ingest`` does:
- ``local``: ``ingest_paths`` in this process (the embedder's own threads use every core);
- ``ray``: ``ingest_ray`` on a local cluster of ``workers`` CPUs (one model per worker, one
  thread each), started before the clock starts; its start is reported apart (``ray_start_s``),
  as it is paid once per command, not per chunk.
Per core divides by the cores each path had (``os.cpu_count()`` in process, ``workers`` on
Ray). ``same`` checks the two indexes hold the same chunks with vectors within 1e-5. Timings are
wall clock on a shared machine: compare the two numbers of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_raybench", "write_corpus"]

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"
SETS = (BENCHMARKS / "cmrc2018_dev.json", BENCHMARKS / "drcd_dev.json")


def write_corpus(folder: Path, n_docs: int) -> int:
    """``n_docs`` paragraphs, half from each set, as numbered .txt files; returns their count."""
    from evals.squad import load_squad

    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for k, path in enumerate(SETS):
        want = n_docs // len(SETS) + (k < n_docs % len(SETS))
        docs += load_squad(path)[0][:want]
    for i, doc in enumerate(docs):
        (folder / f"{i:05d}.txt").write_text(doc.text, encoding="utf-8")
    return len(docs)


def _held(index: Any) -> tuple[list[tuple[str, int, str]], np.ndarray]:
    ids = sorted(index.chunks, key=lambda i: (index.chunks[i].doc_id, index.chunks[i].ordinal))
    return [(index.chunks[i].doc_id, index.chunks[i].ordinal, index.chunks[i].text) for i in ids], \
        index.vectors(ids)


def run_raybench(n_docs: int = 300, workers: int = 2, *, embedder: str = "e5", batch: int = 32,
                 log: Any = print) -> dict[str, Any]:
    """Both ingests of the same ``n_docs`` files; chunks/s overall and per core for each."""
    import ray

    from rag.ingest import ingest_paths
    from rag.ingest.distributed import OBJECT_STORE_BYTES, ingest_ray
    from rag.models.embed import load_embedder
    from rag.store.index import Index

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = write_corpus(work / "docs", n_docs)
        cores = os.cpu_count() or 1
        log(f"{docs} files, {cores} cores, load {os.getloadavg()[0]:.1f}; in process …")
        local = Index.open(work / "local", load_embedder(embedder))
        t = time.perf_counter()
        _, report = ingest_paths(local, [work / "docs"], batch=batch)
        local_s = time.perf_counter() - t
        log(f"in process: {report.chunks_embedded} chunks in {local_s:.1f}s; Ray …")

        t = time.perf_counter()
        ray.init(num_cpus=workers, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
        start_s = time.perf_counter() - t
        try:
            remote = Index.open(work / "ray", load_embedder(embedder))
            t = time.perf_counter()
            ray_report = ingest_ray(remote, [work / "docs"], workers=workers, batch=batch,
                                    embedder=embedder)
            ray_s = time.perf_counter() - t
        finally:
            ray.shutdown()
        log(f"on Ray: {ray_report.chunks_embedded} chunks in {ray_s:.1f}s (+{start_s:.1f}s start)")
        (chunks_a, vectors_a), (chunks_b, vectors_b) = _held(local), _held(remote)
        same = chunks_a == chunks_b and bool(np.allclose(vectors_a, vectors_b, atol=1e-5))
    chunks = report.chunks_embedded
    return {
        "docs": docs, "chunks": chunks, "embedder": embedder, "batch": batch, "cores": cores,
        "workers": workers, "same": same, "load_avg_1m": round(os.getloadavg()[0], 2),
        "local_s": round(local_s, 2), "ray_s": round(ray_s, 2), "ray_start_s": round(start_s, 2),
        "local_chunks_per_s": round(chunks / local_s, 2),
        "ray_chunks_per_s": round(ray_report.chunks_embedded / ray_s, 2),
        "local_chunks_per_s_per_core": round(chunks / local_s / cores, 2),
        "ray_chunks_per_s_per_core": round(ray_report.chunks_embedded / ray_s / workers, 2),
        "ray_with_start_chunks_per_s_per_core": round(
            ray_report.chunks_embedded / (ray_s + start_s) / workers, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--embedder", default="e5")
    args = parser.parse_args(argv)
    print(json.dumps(run_raybench(args.docs, args.workers, embedder=args.embedder), indent=2))


if __name__ == "__main__":
    main()
