"""A synthetic N-chunk vector index: does ``rag.store.index.build_faiss`` pick an approximate index
above ``HNSW_ABOVE``, and how good, big and fast is it against exact (flat) search?

Vectors are clustered with a low intrinsic dimension, like sentence embeddings (isotropic random
384-d points have no near neighbours worth the name, which no real corpus looks like): a point
is a cluster centre plus Gaussian noise in a ``latent``-dimensional subspace, mapped into
``dim`` dimensions by a random orthonormal matrix, plus a little full-dimensional noise, then
L2-normalized. Queries are fresh draws from the same process (not points of the index).

Memory: the index's own size is its serialized size (for HNSWFlat: the float32 vectors, the
graph links and the id map, as held in RAM); the peak RSS of the run is reported beside it (it
also holds the raw vectors and a flat copy for the exact baseline).

``run_scale(n=1_000_000)`` is the real run (minutes: HNSW construction dominates);
``run_scale(n=20_000, threshold=10_000)`` is the same code at test size.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from typing import Any

import numpy as np

import rag.store.index

__all__ = ["peak_rss_mb", "run_scale", "synthetic_vectors"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_vectors(n: int, dim: int = 384, *, clusters: int = 2000, latent: int = 48,
                      spread: float = 0.6, noise: float = 0.02, seed: int = 0, draw: int = 0,
                      block: int = 100_000) -> np.ndarray:
    """``n`` unit vectors (float32, ``n × dim``), clustered; see the module docstring. The same
    ``seed`` gives the same clusters; ``draw`` picks an independent sample from them."""
    shape = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(shape.standard_normal((dim, latent)))  # dim × latent, orthonormal
    centres = shape.standard_normal((clusters, latent)).astype(np.float32)
    rng = np.random.default_rng([seed, draw])
    out = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        z = centres[rng.integers(0, clusters, b - a)] + spread * rng.standard_normal((b - a, latent))
        v = z.astype(np.float32) @ basis.T.astype(np.float32)
        v += (noise * rng.standard_normal(v.shape)).astype(np.float32)
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def _latencies(index: Any, queries: np.ndarray, k: int) -> np.ndarray:
    """Milliseconds per query, one query at a time (as ``Index.dense_search`` asks)."""
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        index.search(q.reshape(1, -1), k)
        times[i] = (time.perf_counter() - t) * 1000
    return times


def run_scale(n: int = 1_000_000, *, dim: int = 384, queries: int = 1000, k: int = 10,
              threshold: int | None = None, ef_search: tuple[int, ...] = (32, 64, 128, 256),
              flat_latency_queries: int = 100, seed: int = 0, log: Any = print) -> dict[str, Any]:
    """Build the index ``build_faiss`` chooses for ``n`` vectors; recall@k against exact search,
    memory, build time and single-query latency (flat vs approximate)."""
    import faiss

    saved = rag.store.index.HNSW_ABOVE
    if threshold is not None:
        rag.store.index.HNSW_ABOVE = threshold
    try:
        t = time.perf_counter()
        data = synthetic_vectors(n, dim, seed=seed)
        xq = synthetic_vectors(queries, dim, seed=seed, draw=1)
        log(f"generated {n:,} × {dim} vectors in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        index = rag.store.index.build_faiss(data, np.arange(1, n + 1, dtype=np.int64))
        build_s = time.perf_counter() - t
        inner: Any = faiss.downcast_index(index.index)
        kind = type(inner).__name__
        log(f"build_faiss chose {kind} (threshold {rag.store.index.HNSW_ABOVE:,}) in {build_s:.0f} s")
    finally:
        rag.store.index.HNSW_ABOVE = saved
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vectors.faiss")
        faiss.write_index(index, path)
        file_mb = os.path.getsize(path) / 2**20
    t = time.perf_counter()
    sims, exact = faiss.knn(xq, data, k, metric=faiss.METRIC_INNER_PRODUCT)
    log(f"exact top-{k} for {queries} queries in {time.perf_counter() - t:.0f} s")
    exact_ids = exact + 1
    out: dict[str, Any] = {
        "n": n, "dim": dim, "queries": queries, "index": kind, "hnsw_above": threshold or saved,
        "build_s": round(build_s, 1), "index_file_mb": round(file_mb),
        "raw_vectors_mb": round(data.nbytes / 2**20),
        "neighbour_cosine": {"top1": round(float(sims[:, 0].mean()), 3),
                             f"top{k}": round(float(sims[:, -1].mean()), 3)}, "recall": {}}
    default_ef = getattr(getattr(inner, "hnsw", None), "efSearch", None)
    sweep = sorted({*ef_search, default_ef}) if default_ef is not None else [None]
    for ef in sweep:
        if ef is not None:
            inner.hnsw.efSearch = ef
        _, got = index.search(xq, k)
        recall = float(np.mean([len(set(g) & set(e)) / k for g, e in zip(got, exact_ids, strict=True)]))
        lat = _latencies(index, xq[:200], k)
        out["recall"][str(ef or "exact")] = {
            "recall@10": round(recall, 4), "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p95_ms": round(float(np.percentile(lat, 95)), 3)}
        log(f"efSearch={ef}: recall@{k} {recall:.4f}, p50 {np.percentile(lat, 50):.2f} ms")
    if default_ef is not None:
        inner.hnsw.efSearch = default_ef
        out["ef_search_used"] = default_ef
        out["recall_at_default"] = out["recall"][str(default_ef)]["recall@10"]
    else:
        out["recall_at_default"] = out["recall"]["exact"]["recall@10"]
    del index
    flat = faiss.IndexFlatIP(dim)
    flat.add(data)
    lat = _latencies(flat, xq[:flat_latency_queries], k)
    out["flat_p50_ms"] = round(float(np.percentile(lat, 50)), 3)
    out["flat_p95_ms"] = round(float(np.percentile(lat, 95)), 3)
    out["peak_rss_mb"] = round(peak_rss_mb())
    log(f"flat: p50 {out['flat_p50_ms']} ms")
    return out
