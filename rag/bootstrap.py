"""Edge helpers: turn ``Settings`` into a ready index and generator (CLI, server, client)."""

from __future__ import annotations

from collections.abc import Callable

from rag.answer.generate import Generator, load_generator
from rag.answer.reading import Judge, load_judge
from rag.config import Settings
from rag.ingest import IngestReport, ingest_paths
from rag.models.embed import load_embedder
from rag.store.backend import SearchBackend
from rag.store.collections import DEFAULT, open_collection

__all__ = ["make_generator", "make_judge", "open_index"]


def open_index(settings: Settings, *, build: bool = True,
               on_build: Callable[[SearchBackend], IngestReport] | None = None) -> SearchBackend:
    """Open the default collection (``settings.location()``); when it is empty and ``build``,
    ingest ``settings.seeds_dir`` (through ``on_build`` when given, so an edge can show progress)."""
    index = open_collection(settings.location(), DEFAULT, load_embedder(settings.embedder), create=True)
    if build and not len(index) and settings.seeds_dir.exists():
        if on_build is not None:
            on_build(index)
        else:
            ingest_paths(index, [settings.seeds_dir], chunk_size=settings.chunk_size,
                         overlap=settings.chunk_overlap, limits=settings.limits())
    return index


def make_judge(settings: Settings) -> Judge | None:
    """The reader stage as ``RAG_READER`` asks (None when off); loads the model once."""
    return None if settings.reader == "off" else load_judge(settings.reader)


def make_generator(settings: Settings) -> Generator:
    return load_generator(settings.generator, settings)
