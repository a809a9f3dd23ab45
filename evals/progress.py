"""Resumable runs: each measured row is appended to a JSONL progress file as soon as it exists
(flushed per row), so an interrupted run keeps what it measured and a rerun skips it.

The file's first line is ``{"fingerprint": ...}``: a hash of the dataset's bytes and of the
settings that change a measurement. A file with another fingerprint (another dataset, embedder,
top_k ...) is never resumed from: the run starts it over.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Progress", "fingerprint", "progress_path", "sigterm_as_interrupt", "write_json_atomic"]


def fingerprint(dataset: Path, settings: Mapping[str, Any]) -> str:
    """A short hash of the dataset file and the settings (key order does not matter)."""
    digest = hashlib.sha256(Path(dataset).read_bytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()[:16]


def progress_path(out_json: Path) -> Path:
    """The progress file beside a report: ``out.json`` → ``out.partial.jsonl``.

    >>> progress_path(Path("runs/drcd.json")).as_posix()
    'runs/drcd.partial.jsonl'
    """
    return out_json.with_name(f"{out_json.stem}.partial.jsonl")


def _read_rows(path: Path, fp: str) -> list[dict[str, Any]] | None:
    """The rows of a progress file made with fingerprint ``fp``; None when absent or another's."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("fingerprint") != fp:
        return None
    rows = []
    for line in lines[1:]:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the last line of a killed run can be cut short
            continue
    return [r for r in rows if isinstance(r, dict)]


class Progress:
    """The rows a previous run measured (``done``, by ``key``; rows with an ``error`` are not
    done, so a rerun retries them) and an append-only log for the rows of this run."""

    def __init__(self, path: Path, fp: str, *, key: str, restart: bool = False) -> None:
        self.path, self.key = path, key
        rows = None if restart else _read_rows(path, fp)
        self.done: dict[Any, dict[str, Any]] = {}
        for row in rows or []:  # a later row for the same key wins (a retried error)
            if row.get("error"):
                self.done.pop(row.get(key), None)
            else:
                self.done[row.get(key)] = row
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a" if rows is not None else "w", encoding="utf-8")  # noqa: SIM115
        if rows is None:
            self._write({"fingerprint": fp})

    def _write(self, row: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def add(self, row: Mapping[str, Any]) -> None:
        """Log one measured row (on disk before the next question is asked)."""
        self._write(row)

    def close(self, *, finished: bool) -> None:
        """Close the log; a finished run deletes it (the report holds every row)."""
        self._file.close()
        if finished:
            self.path.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON through a temporary file and a rename: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt, so a killed run writes its partial
    report as Ctrl-C does (signal handlers can only be set from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
