"""Render eval runs: a Markdown metrics table (also what the CLI prints), the failures, and a
PNG plot of answer accuracy against latency, one point per configuration.

A run is ``(summary, records)`` as produced by ``evals.harness``; several runs are a dict
keyed by configuration name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "failures", "format_table", "plot_accuracy_latency", "write_report"]

# (summary key, header, format): ``%`` shares, ``ms`` milliseconds, ``int`` counts.
COLUMNS: list[tuple[str, str, str]] = [
    ("name", "config", "str"), ("generator", "generator", "str"), ("n", "n", "int"),
    ("accuracy", "accuracy", "%"), ("answerable_accuracy", "answerable", "%"),
    ("refusal_precision", "refusal P", "%"), ("refusal_recall", "refusal R", "%"),
    ("false_refusals", "false refusals", "int"), ("hit@1", "hit@1", "%"), ("hit@5", "hit@5", "%"),
    ("mrr", "MRR", "3f"), ("doc_hit@1", "doc hit@1", "%"),
    ("citation_precision", "citation P", "%"), ("citation_doc_precision", "citation doc P", "%"),
    ("unsupported_rate", "unsupported", "%"), ("latency_p50_ms", "p50 ms", "ms"),
    ("latency_p95_ms", "p95 ms", "ms"), ("errors", "errors", "int"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if fmt == "%":
        return f"{100 * value:.1f}%"
    if fmt == "ms":
        return f"{value:.0f}"
    if fmt == "3f":
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def format_table(rows: Sequence[Mapping[str, Any]],
                 columns: Sequence[tuple[str, str, str]] = COLUMNS) -> str:
    """A Markdown table, one row per summary.

    >>> print(format_table([{"name": "e5", "accuracy": 0.5}], [("name", "config", "str"),
    ...                                                        ("accuracy", "acc", "%")]))
    | config | acc |
    |---|---|
    | e5 | 50.0% |
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        ignored = row.get("ignored")
        cells = [_cell(row.get(key), fmt) for key, _, fmt in columns]
        if ignored and columns and columns[0][0] == "name":
            cells[0] += f" (ignored: {', '.join(ignored)})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _short(text: Any, limit: int = 160) -> str:
    s = " ".join(str(text).split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _expected(rec: Mapping[str, Any]) -> str:
    if rec["unanswerable"]:
        return "(refuse)"
    return " + ".join("/".join(spellings) for spellings in rec.get("expected") or [])


def failures(records: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of the questions a run got wrong: question, expected, got."""
    wrong = [r for r in records if not r["correct"]]
    if not wrong:
        return "No failures."
    lines = ["| id | question | expected | got |", "|---|---|---|---|"]
    for r in wrong:
        got = (f"error: {r['error']}" if r.get("error")
               else "(refused)" if r["refused"] else r.get("answer") or "")
        lines.append(f"| {r['id']} | {_short(r['question'], 80)} | {_short(_expected(r), 60)} "
                     f"| {_short(got)} |")
    return "\n".join(lines)


def write_report(path: Path,
                 runs: Mapping[str, tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]], *,
                 plot: Path | None = None, title: str = "wenda eval") -> None:
    """The Markdown report: the metrics table, the plot, then each configuration's failures."""
    summaries = [s for s, _ in runs.values()]
    datasets = sorted({str(s.get("dataset")) for s in summaries if s.get("dataset")})
    parts = [f"# {title}", ""]
    if datasets:
        parts += [f"Dataset: {', '.join(f'`{d}`' for d in datasets)}", ""]
    parts += [format_table(summaries), ""]
    if plot is not None:
        rel = plot.name if plot.parent.resolve() == path.parent.resolve() else str(plot)
        parts += [f"![accuracy vs latency]({rel})", ""]
    for name, (summary, records) in runs.items():
        wrong = sum(not r["correct"] for r in records)
        parts += [f"## Failures: {name} ({wrong} of {summary.get('n', len(records))})", "",
                  failures(records), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def plot_accuracy_latency(summaries: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Scatter answer accuracy (y) against p50 latency (x, with a p50–p95 bar), one point per
    configuration, named in the legend; written as PNG with matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    xs: list[float] = []
    for s in summaries:
        acc, p50, p95 = s.get("accuracy"), s.get("latency_p50_ms"), s.get("latency_p95_ms")
        if acc is None or not p50:
            continue
        ax.errorbar([p50], [100 * acc], xerr=[[0], [max((p95 or p50) - p50, 0)]], fmt="o",
                    capsize=3, label=str(s.get("name")))
        xs += [p50, p95 or p50]
    ax.set_xscale("log")  # extractive runs take ms, LLM runs seconds: one axis for both
    if xs:
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xlabel("latency per question, ms (log; dot p50, bar to p95)")
    ax.set_ylabel("answer accuracy, %")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.set_title("accuracy vs latency per configuration")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
