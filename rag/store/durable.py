"""Durable file writes: ``atomic_write`` (write aside, fsync, rename) and ``sweep_temp_files``
(delete what writers killed mid-write left behind); ``locked`` (one writer per index directory)
and ``wipe`` (empty one, under that lock)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "locked", "sweep_temp_files", "wipe"]


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path`` and fsync the directory.

    The temp file is named ``.<name>.<pid>.<random>``, so ``sweep_temp_files`` can tell the
    leftovers of a killed process from a write in progress."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sweep_temp_files(directory: Path) -> list[str]:
    """Delete temp files that ``atomic_write`` calls in dead processes left behind (a SIGKILL
    mid-write leaves one; at 1M chunks a FAISS temp file is ~1.8 GB). Returns their names."""
    swept = []
    for path in directory.glob(".*.*.*"):
        pid = path.name.split(".")[-2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            path.unlink()
            swept.append(path.name)
        except FileNotFoundError:  # another process swept it first
            pass
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Exclusive writer lock on an index directory (blocks until the other writer finishes)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def wipe(directory: Path) -> None:
    """Delete an index directory's contents (for ``--rebuild``); the other collections kept in
    the default one's directory (``collections/``) stay."""
    if directory.exists():
        with locked(directory):
            for child in directory.iterdir():
                if child.name not in ("lock", "collections"):
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
