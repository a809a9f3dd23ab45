"""What routes depend on, as ``Annotated`` aliases: ``SettingsDep``, ``IndexDep``, ``GeneratorDep``.

The app's lifespan fills one ``State`` (settings, the loaded index, the generator, the writer
lock) on ``app.state.wenda``; nothing here loads a model or reads the environment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from rag.config import Settings
from rag.errors import IndexStateError
from rag.generate import Generator
from rag.index import Index
from server.errors import ApiError
from server.limits import authorized

__all__ = ["GeneratorDep", "IndexDep", "SettingsDep", "State", "StateDep", "WriterDep", "current_index",
           "get_state", "live_index"]


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
    """The index one request reads: a snapshot, so a reload meanwhile never changes it.

    First, unless a write is in flight (readers never wait for a writer), the loaded index is
    reloaded if another process (``rag ingest``) committed a change since it was loaded.
    """
    index = live_index(state)
    if state.write_lock.acquire(blocking=False):
        try:
            index.refresh()
        finally:
            state.write_lock.release()
    return index.snapshot()


def current_index(state: State) -> Index:
    """Like ``get_index``, but waits for a write in flight: a snapshot matching the docstore."""
    index = live_index(state)
    # an ingest job holds the lock for minutes: wait a moment for a commit in flight, not for the job
    waited = state.write_lock.acquire(timeout=1.0)
    try:
        index.refresh()
    finally:
        if waited:
            state.write_lock.release()
    return index.snapshot()


def live_index(state: State) -> Index:
    """The loaded index itself: writers (holding ``write_lock``) ingest into it; its reload is
    atomic, and requests in flight keep reading their snapshots."""
    if state.index is None:
        raise IndexStateError("the index is not loaded yet")
    return state.index


def get_generator(state: StateDep) -> Generator | None:
    return state.generator


def require_writer(request: Request, state: StateDep) -> None:
    """Write routes need ``Authorization: Bearer <RAG_API_KEY>`` when a key is configured."""
    if not authorized(request.headers.get("authorization", ""), state.settings.api_key):
        raise ApiError(401, "unauthorized", "this route needs Authorization: Bearer <RAG_API_KEY>")


SettingsDep = Annotated[Settings, Depends(get_settings)]
IndexDep = Annotated[Index, Depends(get_index)]
GeneratorDep = Annotated[Generator | None, Depends(get_generator)]
WriterDep = Annotated[None, Depends(require_writer)]
