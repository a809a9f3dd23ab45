"""The ``rag`` command: a thin layer over the library. Errors become one message, exit 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from rag.cli_collections import collections_app, keys_app
from rag.config import Settings
from rag.errors import RagError
from rag.store.collections import DEFAULT
from rag.store.filters import Filter

app = typer.Typer(help="wenda: ask questions of your documents, with verified citations.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
bench_app = typer.Typer(help="Public benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(collections_app, name="collections")
app.add_typer(keys_app, name="keys")
err = Console(stderr=True)
out = Console(highlight=False)

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="see `rag collections list`")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tag", help="only documents with any of these tags")]
AllTagsOpt = Annotated[list[str] | None, typer.Option("--all-tags", help="only documents with every one")]
DocsOpt = Annotated[list[str] | None, typer.Option("--doc", help="only these documents (doc ids)")]
PathOpt = Annotated[str | None, typer.Option("--path", help="only documents whose id or path starts so")]


def _filter(tag: list[str] | None, all_tags: list[str] | None, doc: list[str] | None,
            path: str | None) -> Filter | None:
    """The ``--tag/--all-tags/--doc/--path`` options as a ``Filter`` (None when none is given)."""
    return Filter.parse({"tags_any": tag or [], "tags_all": all_tags or [], "doc_ids": doc or [],
                         "path_prefix": path or ""}) or None


def _ingest_with_progress(index, paths, *, prune=False, settings: Settings,  # type: ignore[no-untyped-def]
                          tags=None, cluster: str | None = None, workers: int = 2):
    """``ingest_paths`` under a progress bar; ``cluster`` ("local" or a Ray address): on Ray."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rag.ingest import ingest_paths

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("reading files", total=None)

        def reading(done: int, total: int, path: str) -> None:
            bar.update(task, description=f"reading {Path(path).name}", completed=done, total=total)

        def progress(done: int, total: int) -> None:
            bar.update(task, description="embedding chunks", completed=done, total=total)

        options = {"prune": prune, "chunk_size": settings.chunk_size, "overlap": settings.chunk_overlap,
                   "progress": progress, "reading": reading, "limits": settings.limits(), "tags": tags}
        if cluster is None:
            return ingest_paths(index, paths, **options)[1]
        from rag.ingest.distributed import ingest_ray

        bar.update(task, description="starting Ray")
        return ingest_ray(index, paths, address=None if cluster == "local" else cluster,
                          workers=workers, embedder=settings.embedder, **options)


def _print_passed_over(report) -> None:  # type: ignore[no-untyped-def]
    """The files not ingested, and the parts of files left out, with the reason for each."""
    from rich.table import Table

    if not (report.failed or report.notes):
        return
    table = Table("file", "why", title="not ingested", title_justify="left", show_lines=False)
    for row in report.failed:
        table.add_row(row.path, row.reason)
    for row in report.notes:
        table.add_row(row.path, f"[dim](partly) {row.reason}[/dim]")
    out.print(table)


def _open(settings: Settings, *, build: bool = True):  # type: ignore[no-untyped-def]
    from rag.bootstrap import open_index

    def on_build(index):  # type: ignore[no-untyped-def]
        err.print(f"[dim]building the index from {settings.seeds_dir}/ …[/dim]")
        return _ingest_with_progress(index, [settings.seeds_dir], settings=settings)

    return open_index(settings, build=build, on_build=on_build)


def _open_collection(settings: Settings, name: str, *, build: bool = True,  # type: ignore[no-untyped-def]
                     create: bool = False):
    """The default collection as ``_open`` opens it; another one by name (``create``: made when
    missing, and said so)."""
    from rag.models.embed import load_embedder
    from rag.store.collections import check_name, exists, open_collection

    if check_name(name) == DEFAULT:
        return _open(settings, build=build)
    if create and not exists(settings.location(), name):
        err.print(f"creating collection {name!r}")
    return open_collection(settings.location(), name, load_embedder(settings.embedder), create=create)


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders (default: seeds/)")] = None,
    prune: Annotated[bool, typer.Option(help="delete documents not among PATHS")] = False,
    rebuild: Annotated[bool, typer.Option(help="start from an empty index")] = False,
    collection: CollectionOpt = DEFAULT,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", help="tag the documents (repeatable; replaces their given tags, front matter's stay)")
    ] = None,
    ray: Annotated[bool, typer.Option(
        "--ray", help="parse and embed on a local Ray cluster of --workers CPUs (needs the scale extra)")
    ] = False,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", metavar="ADDRESS",
        help="parse and embed on an existing Ray cluster instead: auto, ray://head:10001 (implies --ray)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Ray embedding workers (one model each)")] = 2,
) -> None:
    """Add, update, skip or remove documents in the index (a collection is created if missing).

    --ray: files parsed and chunks embedded by Ray Data workers, same commit. A remote cluster
    must read the files at the same paths and have wenda installed.
    """
    from rag.store.collections import wipe_collection

    settings = Settings()
    cluster = ray_address or ("local" if ray else None)
    if cluster is not None:  # before --rebuild wipes anything
        from rag.ingest.distributed import require_ray

        require_ray()
    if rebuild:
        wipe_collection(settings.location(), collection)
    index = _open_collection(settings, collection, build=False, create=True)
    given = paths or [settings.seeds_dir]
    report = _ingest_with_progress(index, given, prune=prune, settings=settings, tags=tag,
                                   cluster=cluster, workers=workers)
    for label, ids in (("added", report.added), ("updated", report.updated),
                       ("skipped", report.skipped), ("removed", report.removed),
                       ("retagged", report.retagged)):
        out.print(f"{label:>8}: {len(ids)}" + (f"  ({', '.join(ids[:8])}{' …' if len(ids) > 8 else ''})"
                                               if ids else ""))
    out.print(f"  failed: {len(report.failed)}")
    out.print(f"  chunks: {len(index)} in index, {report.chunks_embedded} embedded, "
              f"{report.chunks_reused} reused, {report.seconds:.1f}s")
    _print_passed_over(report)
    if not (report.added or report.updated or report.skipped or report.retagged):
        # nothing could be read: say so, and fail (a script must not mistake this for success)
        what = "no file could be read" if report.failed else "no supported files found"
        err.print(f"[red]error:[/red] {escape(what)} in {escape(', '.join(str(p) for p in given))}")
        raise typer.Exit(1)


def _print_answer(answer) -> None:  # type: ignore[no-untyped-def]
    out.print(answer.answer)
    if answer.short_answer:
        out.print(f"[bold]short answer:[/bold] {answer.short_answer}")
    for c in answer.citations:
        where = f" {c.location}" if c.location else ""
        out.print(f"[cyan][{c.n}][/cyan] {c.doc_id}{where} [{c.start}:{c.end}] [dim]{c.quote}[/dim]")


@app.command()
def ask(
    question: str,
    json_: Annotated[bool, typer.Option("--json", help="print one Answer JSON object")] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
    collection: CollectionOpt = DEFAULT,
    tag: TagsOpt = None, all_tags: AllTagsOpt = None, doc: DocsOpt = None, path: PathOpt = None,
) -> None:
    """Answer one question (from the documents the filter options allow, if any)."""
    from rag.bootstrap import make_generator, make_judge
    from rag.qa import ask as ask_question

    settings = Settings()
    where = _filter(tag, all_tags, doc, path)
    index = _open_collection(settings, collection)
    answer = ask_question(index, question, top_k=top_k or settings.top_k,
                          generator=make_generator(settings),
                          max_question_chars=settings.max_question_chars,
                          refuse_below=settings.refuse_below, where=where, reader=make_judge(settings))
    if json_:
        sys.stdout.write(answer.model_dump_json() + "\n")
    else:
        _print_answer(answer)


@app.command()
def chat(
    collection: CollectionOpt = DEFAULT,
    tag: TagsOpt = None, all_tags: AllTagsOpt = None, doc: DocsOpt = None, path: PathOpt = None,
) -> None:
    """An interactive multi-turn session (empty line or Ctrl-D to quit)."""
    from rag.bootstrap import make_generator, make_judge
    from rag.qa import ask as ask_question
    from rag.schema import Message

    settings = Settings()
    where = _filter(tag, all_tags, doc, path)
    index = _open_collection(settings, collection)
    generator, reader = make_generator(settings), make_judge(settings)
    history: list[Message] = []
    out.print(f"[dim]{len(index)} passages loaded. Ask a question (empty line to quit).[/dim]")
    while True:
        try:
            question = input("› ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        try:
            answer = ask_question(index, question, top_k=settings.top_k, history=history,
                                  generator=generator, max_question_chars=settings.max_question_chars,
                                  refuse_below=settings.refuse_below, where=where, reader=reader)
        except RagError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            continue
        _print_answer(answer)
        history += [Message(role="user", content=question),
                    Message(role="assistant", content=answer.answer)]


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the HTTP API and the web chat page."""
    from server.app import run

    run(host=host, port=port, settings=Settings())


@app.command("eval")
def eval_(
    dataset: Annotated[Path, typer.Option(help="gold set (JSONL)")] = Path("evals/gold/seeds.jsonl"),
    json_out: Annotated[Path | None, typer.Option("--json", help="records + summary")] = None,
    report: Annotated[Path | None, typer.Option(help="Markdown report (a PNG plot beside it)")] = None,
    compare: Annotated[bool, typer.Option(help="run several configurations into one table")] = False,
    out_dir: Annotated[Path, typer.Option(help="where --compare writes")] = Path("evals/out/compare"),
    min_accuracy: Annotated[float | None, typer.Option(help="exit 1 below this accuracy")] = None,
) -> None:
    """Run a gold set through the pipeline; print the metrics table."""
    from evals.harness import check_floor, run_gold
    from evals.harness import compare as run_compare
    from evals.report import format_table
    from rag.bootstrap import make_generator, make_judge

    settings = Settings()
    if compare:
        rows = run_compare(None, dataset, out_dir, seeds_dir=settings.seeds_dir)
        out.print(format_table(rows))
        out.print(f"[dim]written to {out_dir}/compare.{{json,md,png}}[/dim]")
        return
    index = _open(settings)
    if report is None and json_out is not None:
        report = json_out.with_suffix(".md")
    summary = run_gold(index, dataset, generator=make_generator(settings), top_k=settings.top_k,
                       out_json=json_out, report_md=report, progress=True,
                       ask_kwargs={"reader": make_judge(settings)})
    out.print(format_table([summary]))
    if summary["errors"]:
        err.print(f"[yellow]{summary['errors']} of {summary['n']} question(s) failed or were "
                  "malformed (error rows in the records); the rest were evaluated[/yellow]")
    problems = check_floor(summary, min_accuracy) if min_accuracy is not None else []
    if summary["errors"] == summary["n"]:  # a run that measured nothing must not pass silently
        problems.append("nothing could be evaluated")
    for problem in problems:
        err.print(f"[red]{escape(problem)}[/red]")
    if problems:
        raise typer.Exit(1)


@bench_app.command("squad")
def bench_squad(
    file: Path,
    json_out: Annotated[Path, typer.Option("--json", help="summary + per-question records")],
    limit: Annotated[int | None, typer.Option(help="first N questions (all paragraphs indexed)")] = None,
    index_dir: Annotated[Path | None, typer.Option(help="index for this benchmark")] = None,
    embedder: Annotated[str | None, typer.Option(help="default: RAG_EMBEDDER")] = None,
    restart: Annotated[bool, typer.Option(help="ignore the questions an interrupted run measured")] = False,
) -> None:
    """Open-domain QA over a SQuAD-layout file (DRCD, CMRC 2018), with a BM25 baseline.

    An interrupted run keeps what it measured: the same command again resumes."""
    from evals.bench import format_summary, run_squad

    settings = Settings()
    if not file.is_file():
        raise typer.BadParameter(f"{file}: no such file")
    try:
        summary = run_squad(file, out_json=json_out, limit=limit, top_k=settings.top_k,
                            index_dir=index_dir or Path(".rag-bench") / file.stem,
                            embedder=embedder or settings.embedder, restart=restart)
    except KeyboardInterrupt:
        err.print(f"interrupted: what was measured is in {json_out} (complete: false); "
                  "the same command resumes")
        raise typer.Exit(130) from None
    out.print(format_summary(summary))
    if summary["questions"] and summary["errors"] == summary["questions"]:
        err.print("[red]no question could be measured[/red]")
        raise typer.Exit(1)


@app.command()
def doctor(collection: CollectionOpt = DEFAULT) -> None:
    """Check a collection: its search structures agree with its documents, offsets valid, caches
    current (in PostgreSQL with RAG_BACKEND=postgres: counts, terms, indexes, BM25 weights)."""
    from rag.store.doctor import diagnose

    report = diagnose(Settings().location(), collection)
    for note in report.notes:
        out.print(f"[dim]{note}[/dim]")
    for problem in report.problems:
        err.print(f"[red]{escape(problem)}[/red]")
    if not report.ok:
        raise typer.Exit(1)
    stats = report.stats
    out.print(f"ok: {stats.get('documents')} documents, {stats.get('chunks')} chunks, "
              f"generation {stats.get('generation')}")


def main() -> None:
    """Console entry point: every ``RagError`` becomes one line on stderr and exit code 1."""
    try:
        app()
    except RagError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")  # [llm] in a message is not markup
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
