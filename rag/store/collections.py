"""Collections: several named indexes (knowledge bases) under one ``RAG_INDEX_DIR``.

A collection is a whole index of its own (documents, chunks, vectors, BM25, generation, writer
lock). The default collection is the index directory itself, so an index made before collections
existed is the ``default`` collection unchanged; every other one lives in
``<index_dir>/collections/<name>/``. Names are checked against one pattern before they touch a
path (no ``..``, no separators, no hidden names), and a collection exists when its docstore does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import InputError, NotFoundError
from rag.store.durable import locked

if TYPE_CHECKING:  # the index (numpy, FAISS) loads when a collection is opened, not to name one
    from rag.models.embed import Embedder
    from rag.store.index import Index

__all__ = ["DEFAULT", "NAME_PATTERN", "check_name", "collection_dir", "create_collection",
           "drop_collection", "exists", "list_collections", "open_collection"]

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


def collection_dir(index_dir: Path, name: str) -> Path:
    return index_dir if check_name(name) == DEFAULT else index_dir / _FOLDER / name


def exists(index_dir: Path, name: str) -> bool:
    return name == DEFAULT or (collection_dir(index_dir, name) / _DOCSTORE).is_file()


def list_collections(index_dir: Path) -> list[str]:
    """Every collection's name: ``default`` first, then the others sorted."""
    folder = index_dir / _FOLDER
    others = sorted(p.name for p in folder.iterdir()
                    if _NAME.fullmatch(p.name) and p.name != DEFAULT and (p / _DOCSTORE).is_file()
                    ) if folder.is_dir() else []
    return [DEFAULT, *others]


def open_collection(index_dir: Path, name: str, embedder: Embedder, *, create: bool = False) -> Index:
    """The collection's index; a missing one is ``NotFoundError`` unless ``create``."""
    if not create and not exists(index_dir, name):
        raise NotFoundError(f"no collection {name!r}")
    from rag.store.index import Index

    return Index.open(collection_dir(index_dir, name), embedder)


def create_collection(index_dir: Path, name: str, embedder: Embedder) -> Index:
    """A new, empty collection (``InputError`` if it exists already)."""
    if exists(index_dir, check_name(name)) and name != DEFAULT:
        raise InputError(f"collection {name!r} exists already")
    return open_collection(index_dir, name, embedder, create=True)


def drop_collection(index_dir: Path, name: str) -> None:
    """Delete a collection and everything in it (after its writer, if any, finishes). The default
    collection cannot be dropped: empty it with ``rag ingest --rebuild`` instead."""
    if check_name(name) == DEFAULT:
        raise InputError("the default collection cannot be dropped; `rag ingest --rebuild` empties it")
    if not exists(index_dir, name):
        raise NotFoundError(f"no collection {name!r}")
    folder = collection_dir(index_dir, name)
    with locked(folder):
        # renamed away first: readers opening it meanwhile find no docstore, never half of one
        gone = folder.with_name(f".dropped-{name}")
        shutil.rmtree(gone, ignore_errors=True)
        folder.rename(gone)
    shutil.rmtree(gone, ignore_errors=True)
