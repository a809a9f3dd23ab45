"""Collections: several named indexes (knowledge bases) in one ``Location``.

A collection is a whole index of its own (documents, chunks, vectors, BM25, generation, writer
lock). Where they live is a ``Location``:

- on this machine (``RAG_INDEX_DIR``): the default collection is the index directory itself, so
  an index made before collections existed is the ``default`` collection unchanged; every other
  one lives in ``<index_dir>/collections/<name>/``, and exists when its docstore does;
- in PostgreSQL (``RAG_BACKEND=postgres``, ``RAG_DATABASE_URL``): every collection is rows of one
  database (``rag.store.postgres``); its folder under the index directory holds only its uploads.

Names are checked against one pattern before they touch a path or a query (no ``..``, no
separators, no hidden names). Every function takes a ``Location`` or a plain index directory.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import InputError, NotFoundError
from rag.store.durable import locked, wipe

if TYPE_CHECKING:  # the index (numpy, FAISS, psycopg) loads when a collection is opened
    from rag.models.embed import Embedder
    from rag.store.backend import SearchBackend

__all__ = ["DEFAULT", "NAME_PATTERN", "Location", "check_name", "collection_dir", "create_collection",
           "drop_collection", "exists", "list_collections", "open_collection", "wipe_collection"]

DEFAULT = "default"
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
_FOLDER = "collections"
_DOCSTORE = "docstore.sqlite"


def check_name(name: str) -> str:
    """``name`` if it is a valid collection name, else ``InputError`` saying what one is."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"invalid collection name {str(name)[:80]!r}: use 1-64 lowercase letters,"
                         " digits, '-' or '_', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Location:
    """Where collections live: folders under ``index_dir``, or one PostgreSQL database (whose
    collections keep their uploads under ``index_dir``)."""

    index_dir: Path
    database_url: str | None = None


def _location(where: Location | Path) -> Location:
    return where if isinstance(where, Location) else Location(Path(where))


def collection_dir(index_dir: Path, name: str) -> Path:
    return index_dir if check_name(name) == DEFAULT else index_dir / _FOLDER / name


def exists(where: Location | Path, name: str) -> bool:
    at = _location(where)
    if at.database_url:
        from rag.store.postgres import collections as pg

        return name == DEFAULT or (bool(_NAME.fullmatch(name)) and pg.exists(at.database_url, name))
    return name == DEFAULT or (collection_dir(at.index_dir, name) / _DOCSTORE).is_file()


def list_collections(where: Location | Path) -> list[str]:
    """Every collection's name: ``default`` first, then the others sorted."""
    at = _location(where)
    if at.database_url:
        from rag.store.postgres import collections as pg

        return [DEFAULT, *sorted(n for n in pg.list_collections(at.database_url) if n != DEFAULT)]
    folder = at.index_dir / _FOLDER
    others = sorted(p.name for p in folder.iterdir()
                    if _NAME.fullmatch(p.name) and p.name != DEFAULT and (p / _DOCSTORE).is_file()
                    ) if folder.is_dir() else []
    return [DEFAULT, *others]


def open_collection(where: Location | Path, name: str, embedder: Embedder, *,
                    create: bool = False) -> SearchBackend:
    """The collection's index; a missing one is ``NotFoundError`` unless ``create``."""
    at = _location(where)
    if not create and not exists(at, name):
        raise NotFoundError(f"no collection {name!r}")
    directory = collection_dir(at.index_dir, name)
    if at.database_url:
        from rag.store.postgres import PostgresIndex

        return PostgresIndex.open(at.database_url, name, embedder, directory)
    from rag.store.index import Index

    return Index.open(directory, embedder)


def create_collection(where: Location | Path, name: str, embedder: Embedder) -> SearchBackend:
    """A new, empty collection (``InputError`` if it exists already)."""
    if exists(where, check_name(name)) and name != DEFAULT:
        raise InputError(f"collection {name!r} exists already")
    return open_collection(where, name, embedder, create=True)


def wipe_collection(where: Location | Path, name: str) -> None:
    """Empty a collection, embedder choice included (``rag ingest --rebuild``); the default one's
    folder keeps the other collections."""
    at = _location(where)
    folder = collection_dir(at.index_dir, name)
    if at.database_url:
        from rag.store.postgres import collections as pg

        if pg.exists(at.database_url, name):
            pg.drop(at.database_url, name)
        shutil.rmtree(folder / "uploads", ignore_errors=True)
        return
    wipe(folder)


def drop_collection(where: Location | Path, name: str) -> None:
    """Delete a collection and everything in it (after its writer, if any, finishes). The default
    collection cannot be dropped: empty it with ``rag ingest --rebuild`` instead."""
    at = _location(where)
    if check_name(name) == DEFAULT:
        raise InputError("the default collection cannot be dropped; `rag ingest --rebuild` empties it")
    if not exists(at, name):
        raise NotFoundError(f"no collection {name!r}")
    folder = collection_dir(at.index_dir, name)
    if at.database_url:
        from rag.store.postgres import collections as pg

        pg.drop(at.database_url, name)
        shutil.rmtree(folder, ignore_errors=True)  # its uploads
        return
    with locked(folder):
        # renamed away first: readers opening it meanwhile find no docstore, never half of one
        gone = folder.with_name(f".dropped-{name}")
        shutil.rmtree(gone, ignore_errors=True)
        folder.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)
