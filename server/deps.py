"""What routes depend on, as ``Annotated`` aliases: ``SettingsDep``, ``IndexDep``, ``GeneratorDep``.

The app's lifespan fills one ``State`` (settings, the loaded index, the generator, the writer
lock) on ``app.state.wenda``; nothing here loads a model or reads the environment.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from rag.config import Settings
from rag.errors import IndexStateError
from rag.generate import Generator
from rag.index import Index
from server.errors import ApiError

__all__ = ["GeneratorDep", "IndexDep", "SettingsDep", "State", "StateDep", "WriterDep", "current_index",
           "fresh_index", "get_state", "swap_index"]


@dataclass
class State:
    settings: Settings
    index: Index | None = None
    generator: Generator | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)


def get_state(request: Request) -> State:
    state: State = request.app.state.wenda
    return state


StateDep = Annotated[State, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_index(state: StateDep) -> Index:
    """The loaded index; when another process (``rag ingest``) committed a change, a fresh one.

    A loaded ``Index`` is never reloaded in place while requests may be reading it: a fresh
    one is opened and swapped in (``swap_index``); requests in flight finish on the old one.
    Readers never wait for a writer here.
    """
    if state.write_lock.acquire(blocking=False):
        try:
            return _current(state)
        finally:
            state.write_lock.release()
    return _loaded(state)


def current_index(state: State) -> Index:
    """Like ``get_index``, but waits for a write in flight: an index matching the docstore."""
    with state.write_lock:
        return _current(state)


def _loaded(state: State) -> Index:
    if state.index is None:
        raise IndexStateError("the index is not loaded yet")
    return state.index


def _current(state: State) -> Index:
    index = _loaded(state)  # caller holds the write lock
    if index.current_generation() != index.generation:
        index = fresh_index(index)
        swap_index(state, index)
    return index


def fresh_index(index: Index) -> Index:
    """A second ``Index`` over the same directory and embedder: writers work on it, then swap."""
    return Index.open(index.directory, index.embedder)


def swap_index(state: State, index: Index) -> None:
    """Make ``index`` the one new requests read (one reference assignment: atomic)."""
    state.index = index


def get_generator(state: StateDep) -> Generator | None:
    return state.generator


def require_writer(request: Request, state: StateDep) -> None:
    """Write routes need ``Authorization: Bearer <RAG_API_KEY>`` when a key is configured."""
    key = state.settings.api_key
    if not key:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(401, "unauthorized", "this route needs Authorization: Bearer <RAG_API_KEY>")


SettingsDep = Annotated[Settings, Depends(get_settings)]
IndexDep = Annotated[Index, Depends(get_index)]
GeneratorDep = Annotated[Generator | None, Depends(get_generator)]
WriterDep = Annotated[None, Depends(require_writer)]
