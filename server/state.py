"""What the server holds: its collections, the generator, the keys (``State``, on
``app.state.wenda``).

A ``Collection`` is one loaded index with its own writer lock and upload job runner, so an upload
into one collection never holds up questions to (or uploads into) another. The default collection
is the index the app was given, or opened at startup; any other is opened from
``settings.index_dir`` on first use, with the default's embedder, and forgotten once dropped (by
``State.drop``, or by another process: each lookup checks that it still exists).

Dropping waits for the requests reading the collection (each holds it, ``Collection.used``, until
its response is sent: they read document texts lazily from its docstore), cancels its jobs, and
deletes it under its writer lock; new requests already get 404 meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rag.answer.generate import Generator
from rag.config import Settings
from rag.errors import IndexStateError, NotFoundError
from rag.ingest.jobs import FINISHED, JobRunner
from rag.models.embed import Embedder
from rag.store.backend import SearchBackend
from rag.store.collections import (
    DEFAULT,
    check_name,
    create_collection,
    drop_collection,
    exists,
    list_collections,
    open_collection,
)
from server.access import Access, no_collection
from server.errors import ApiError

__all__ = ["Collection", "State"]

log = logging.getLogger("wenda.server")


@dataclass(eq=False)
class Collection:
    """One collection as the server holds it: writers (holding ``write_lock``) ingest into
    ``index``; readers take snapshots of it, so a reload meanwhile never changes what they read."""

    name: str
    index: SearchBackend
    write_lock: threading.Lock
    jobs: JobRunner
    _users: int = field(default=0, init=False, repr=False)
    _retired: bool = field(default=False, init=False, repr=False)
    _idle: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    def snapshot(self) -> SearchBackend:
        """The index one request reads. First, unless a write is in flight (readers never wait
        for a writer), it is reloaded if another process (``rag ingest``) committed a change."""
        if self.write_lock.acquire(blocking=False):
            try:
                self.index.refresh()
            finally:
                self.write_lock.release()
        return self.index.snapshot()

    def current(self) -> SearchBackend:
        """Like ``snapshot``, but waits a moment for a commit in flight (not for a whole job,
        which holds the lock for minutes): a snapshot matching the docstore."""
        waited = self.write_lock.acquire(timeout=1.0)
        try:
            self.index.refresh()
        finally:
            if waited:
                self.write_lock.release()
        return self.index.snapshot()

    @contextmanager
    def used(self) -> Iterator[Collection]:
        """Held by a request while it reads this collection; ``NotFoundError`` once it is dropped."""
        with self._idle:
            if self._retired:
                raise NotFoundError(no_collection(self.name))
            self._users += 1
        try:
            yield self
        finally:
            with self._idle:
                self._users -= 1
                self._idle.notify_all()

    def retire(self) -> None:
        """No new users from now on (it is being dropped)."""
        with self._idle:
            self._retired = True

    def wait_unused(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._users == 0, timeout)

    def cancel_jobs(self) -> None:
        for job in self.jobs.jobs():
            if job.status not in FINISHED:
                self.jobs.cancel(job.id)


@dataclass
class State:
    settings: Settings
    index: SearchBackend | None = None  # the default collection's (given, or opened at startup)
    generator: Generator | None = None
    write_lock: threading.Lock = field(default_factory=threading.Lock)  # the default collection's
    drain_s: float = 60.0  # how long a drop waits for the requests reading the collection
    access: Access = field(init=False)
    _open: dict[str, Collection] = field(default_factory=dict, init=False, repr=False)
    _dropping: set[str] = field(default_factory=set, init=False, repr=False)
    _mutex: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _admin: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.access = Access(self.settings.api_key, self.settings.keys_file)

    def loaded_index(self) -> SearchBackend:
        if self.index is None:
            raise IndexStateError("the index is not loaded yet")
        return self.index

    def embedder(self) -> Embedder:
        return self.loaded_index().embedder

    def names(self) -> list[str]:
        """Every collection's name, ``default`` first."""
        return list_collections(self.settings.location())

    def collection(self, name: str) -> Collection:
        """The collection ``name``, opened on first use (``NotFoundError`` if there is none,
        ``InputError`` if ``name`` cannot be one)."""
        check_name(name)
        with self._mutex:
            found, dropping = self._open.get(name), name in self._dropping
        if dropping:
            raise NotFoundError(no_collection(name))
        if found is not None:
            if name == DEFAULT or exists(self.settings.location(), name):
                return found
            self._forget(found)  # dropped by another process
        made = self._make(name)
        with self._mutex:
            if name in self._dropping:
                raise NotFoundError(no_collection(name))
            return self._open.setdefault(name, made)

    def _make(self, name: str, index: SearchBackend | None = None) -> Collection:
        if name == DEFAULT:
            index, lock = self.loaded_index(), self.write_lock
        else:
            index = index or open_collection(self.settings.location(), name, self.embedder())
            lock = threading.Lock()
        s = self.settings
        return Collection(name, index, lock,
                          JobRunner(lock, abandon_after=s.job_abandon_s, max_queued=s.max_queued_jobs))

    def _forget(self, coll: Collection) -> None:
        coll.retire()
        with self._mutex:
            if self._open.get(coll.name) is coll:
                del self._open[coll.name]

    def create(self, name: str) -> Collection:
        """A new, empty collection: 409 ``exists`` if there is one by that name."""
        check_name(name)
        with self._admin:
            if exists(self.settings.location(), name):
                raise ApiError(409, "exists", f"collection {name!r} exists already")
            made = self._make(name, create_collection(self.settings.location(), name, self.embedder()))
            with self._mutex:
                self._open[name] = made
        return made

    def drop(self, name: str) -> None:
        """Delete the collection ``name`` once the requests reading it are done (at most
        ``drain_s``) and its jobs are cancelled; new requests get 404 from the start."""
        with self._admin:
            with self._mutex:
                coll = self._open.pop(name, None)
                self._dropping.add(name)
            try:
                if coll is None:
                    drop_collection(self.settings.location(), name)
                    return
                coll.retire()
                coll.cancel_jobs()
                if not coll.wait_unused(self.drain_s):
                    log.warning("dropping collection %r while requests still read it", name)
                coll.cancel_jobs()  # one submitted by a request that was still running
                with coll.write_lock:
                    drop_collection(self.settings.location(), name)
            finally:
                with self._mutex:
                    self._dropping.discard(name)
