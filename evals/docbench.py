"""Document ingest speed: PDF pages per second, as ratios measured in one run.

    python -m evals.docbench [--docs 40] [--pages 5] [--embedder e5]    # part of make bench

Corpus: CMRC 2018 dev paragraphs (Simplified Chinese) typeset into PDFs by reportlab (built-in
``STSong-Light``, wrapped lines, ``--pages`` pages each), written to a temporary folder. On the
same files, in one run:
- ``raw``: pypdfium2 alone, every page's ``get_text_range()`` (the floor any PDF reader pays);
- ``load``: ``rag.loaders.extract`` (paragraphs, generated spaces, tables check, page table);
- ``ingest``: ``rag ingest``'s path into an empty index (find, hash, load, normalize, chunk,
  embed, commit);
- ``embed``: the embedder alone on the chunk texts that ingest embedded, in the same batches.
Reported: pages/s of each, and the ratios load/raw and ingest/embed (how much the document
path adds to what the hardware must do anyway). Timings are wall clock: compare the ratios.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "measure", "write_pdfs"]

ROOT = Path(__file__).resolve().parent.parent
CMRC = ROOT.parent / "shared" / "benchmarks" / "cmrc2018_dev.json"
OUT = ROOT / "evals" / "out" / "docbench.json"
CHARS_PER_LINE, LINES_PER_PAGE = 34, 40


def _paragraphs(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [p["context"] for article in data["data"] for p in article["paragraphs"]]


def _pdf(text: str, pages: int) -> bytes:
    """``text`` repeated to fill ``pages`` A4 pages, one paragraph per source paragraph."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)
    lines = [text[i:i + CHARS_PER_LINE] for i in range(0, len(text), CHARS_PER_LINE)]
    for _ in range(pages):
        canvas.setFont("STSong-Light", 12)
        for row, line in enumerate((lines * LINES_PER_PAGE)[:LINES_PER_PAGE]):
            canvas.drawString(60, 780 - 18 * row, line)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def write_pdfs(folder: Path, docs: int, pages: int, source: Path = CMRC) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(_paragraphs(source)[:docs]):
        path = folder / f"doc{i:03d}.pdf"
        path.write_bytes(_pdf(text, pages))
        paths.append(path)
    return paths


def _raw(paths: list[Path]) -> float:
    import pypdfium2 as pdfium

    t = time.perf_counter()
    for path in paths:
        pdf = pdfium.PdfDocument(path.read_bytes())
        for page in pdf:
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        pdf.close()
    return time.perf_counter() - t


def _load(paths: list[Path]) -> float:
    from rag.loaders import extract

    t = time.perf_counter()
    for path in paths:
        extract(path.read_bytes(), str(path))
    return time.perf_counter() - t


def measure(folder: Path, embedder: Any, index_dir: Path, batch: int = 32) -> dict[str, Any]:
    """The four timings and their ratios over the PDFs in ``folder``."""
    import pypdfium2 as pdfium

    from rag.ingest import ingest
    from rag.ingest.documents import find_files
    from rag.store.index import Index

    paths = sorted(folder.glob("*.pdf"))
    pages = sum(len(pdfium.PdfDocument(p.read_bytes())) for p in paths)
    _raw(paths[:1]), _load(paths[:1])  # warm: imports, PDFium's font tables
    raw, load = _raw(paths), _load(paths)
    index = Index.open(index_dir, embedder)
    t = time.perf_counter()
    report = ingest(index, find_files([folder])[0], batch=batch)
    ingest_s = time.perf_counter() - t
    texts = [c.text for c in index.chunks.values()]
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed_passages(texts[i:i + batch])
    embed = time.perf_counter() - t
    return {"documents": len(paths), "pages": pages, "chunks": report.chunks_embedded,
            "embedder": embedder.name,
            "seconds": {"raw": round(raw, 3), "load": round(load, 3), "ingest": round(ingest_s, 2),
                        "embed": round(embed, 2)},
            "pages_per_s": {k: round(pages / max(v, 1e-9), 1) for k, v in
                            (("raw", raw), ("load", load), ("ingest", ingest_s), ("embed", embed))},
            "ratios": {"load_vs_raw": round(load / raw, 2), "ingest_vs_embed": round(ingest_s / embed, 3)}}


def format_table(r: dict[str, Any]) -> str:
    rows = [f"PDF ingest: {r['documents']} files, {r['pages']} pages, {r['chunks']} chunks,"
            f" embedder {r['embedder']}", "", "| stage | seconds | pages/s |", "|---|---|---|"]
    for key, label in (("raw", "pypdfium2 text alone"), ("load", "rag.loaders.extract"),
                       ("ingest", "rag ingest (load + chunk + embed + commit)"),
                       ("embed", "embedder alone, same chunks")):
        rows.append(f"| {label} | {r['seconds'][key]} | {r['pages_per_s'][key]} |")
    rows += ["", f"extract / raw pypdfium2: {r['ratios']['load_vs_raw']}×;"
                 f" ingest / embedding alone: {r['ratios']['ingest_vs_embed']}×"]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    from rag.models.embed import load_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--embedder", default="e5")
    parser.add_argument("--json", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pdfs"
        write_pdfs(folder, args.docs, args.pages)
        result = measure(folder, load_embedder(args.embedder), Path(tmp) / "index")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(format_table(result))


if __name__ == "__main__":
    main()
