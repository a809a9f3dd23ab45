"""Background jobs, one at a time: ``JobRunner`` runs queued work in its own thread under a lock.

A job is ``queued``, then ``running``, then ``done``, ``failed`` or ``cancelled``. Its work is a
function of the ``Job``: it reports progress with ``job.progress(done, total)``, checks
``job.cancelled`` between steps, and returns the result dict. Finished jobs are kept (the last
``keep``) so their result can be read; the thread exits when the queue is empty.

A client that left is not worked for: a queued job that nobody asked about (``touch``, done by
each ``GET /jobs/{id}`` and by a waiting request) for ``abandon_after`` seconds is cancelled when
its turn comes, instead of started.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from rag.errors import IngestCancelled, NotFoundError, RagError

__all__ = ["FINISHED", "Job", "JobRunner"]

log = logging.getLogger("wenda.jobs")
FINISHED = ("done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    work: Callable[[Job], dict[str, Any]] | None  # dropped once finished: it holds the uploads
    documents: list[str] = field(default_factory=list)
    status: str = "queued"
    chunks_done: int = 0
    chunks_total: int = 0
    result: dict[str, Any] | None = None
    error: RagError | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    seen: float = field(default_factory=time.monotonic)  # the last time a client asked about it
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int) -> None:
        self.chunks_done, self.chunks_total = done, total

    def cancelled(self) -> bool:
        return self.cancel_requested.is_set()

    def to_dict(self) -> dict[str, Any]:
        error = {"code": self.error.code, "message": str(self.error)} if self.error else None
        return {"id": self.id, "status": self.status, "documents": self.documents,
                "progress": {"chunks_done": self.chunks_done, "chunks_total": self.chunks_total},
                "cancel_requested": self.cancelled(), "result": self.result, "error": error,
                "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at}


class JobRunner:
    """Run submitted jobs one at a time, each while holding ``lock`` (the index's writer lock)."""

    def __init__(self, lock: AbstractContextManager[Any], *, abandon_after: float = 60.0,
                 max_queued: int = 16, keep: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lock, self.abandon_after, self.max_queued, self.keep = lock, abandon_after, max_queued, keep
        self.clock = clock
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: deque[Job] = deque()
        self._mutex = threading.Lock()
        self._worker: threading.Thread | None = None

    def full(self) -> bool:
        with self._mutex:
            return len(self._queue) >= self.max_queued

    def submit(self, work: Callable[[Job], dict[str, Any]], documents: list[str] | None = None) -> Job:
        job = Job(uuid.uuid4().hex, work, list(documents or []), seen=self.clock())
        with self._mutex:
            self._jobs[job.id] = job
            self._queue.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._drain, name="wenda-jobs", daemon=True)
                self._worker.start()
        return job

    def jobs(self) -> list[Job]:
        """Every job kept, oldest first (without marking any as asked about)."""
        with self._mutex:
            return list(self._jobs.values())

    def get(self, job_id: str) -> Job:
        """The job, marked as asked about (a client is still there)."""
        with self._mutex:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} (finished jobs are kept for a while only)")
        job.seen = self.clock()
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one never starts; a running one stops at its next check and
        changes nothing; a finished one stays as it is."""
        job = self.get(job_id)
        with self._mutex:
            if job.status in FINISHED:
                return job
            job.cancel_requested.set()
            if job.status == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled", error=IngestCancelled("cancelled before it started"))
        return job

    def _drain(self) -> None:
        while True:
            with self._mutex:
                if not self._queue:
                    self._worker = None  # the next submit starts a new thread
                    return
                job = self._queue.popleft()
                idle = self.clock() - job.seen
                if idle > self.abandon_after:
                    self._finish(job, "cancelled", error=IngestCancelled(
                        f"not started: nobody asked about this job for {idle:.0f} s (the client left)"))
                    continue
                job.status, job.started_at = "running", time.time()
            self._run(job)

    def _run(self, job: Job) -> None:
        status, result = "failed", None
        error: RagError | None = None
        try:
            with self.lock:
                assert job.work is not None
                result = job.work(job)
            status = "done"
        except IngestCancelled as exc:
            status, error = "cancelled", exc
        except RagError as exc:
            error = exc
        except Exception as exc:  # a job never takes the worker thread down
            log.exception("job %s failed", job.id)
            error = RagError(f"the job failed unexpectedly ({type(exc).__name__}); see the server log")
        with self._mutex:
            self._finish(job, status, result=result, error=error)

    def _finish(self, job: Job, status: str, *, result: dict[str, Any] | None = None,
                error: RagError | None = None) -> None:
        """Record the outcome (caller holds ``_mutex``) and forget the oldest finished jobs."""
        job.status, job.result, job.error, job.finished_at = status, result, error, time.time()
        job.work = None
        job.finished.set()
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for old in finished[:max(0, len(finished) - self.keep)]:
            del self._jobs[old.id]
