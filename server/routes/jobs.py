"""``GET /jobs/{id}`` (progress, then the result) and ``DELETE /jobs/{id}`` (cancel) for upload jobs.

``POST /documents`` queues an ingest job on the app's ``JobRunner`` (``rag.jobs``): one at a time,
under the writer lock, so readers keep their snapshots and never wait for it. Polling a job also
tells the runner its client is still there (a queued job nobody polls is dropped unstarted).
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from rag.jobs import FINISHED, JobRunner
from server.deps import State, StateDep, WriterDep

__all__ = ["JobsDep", "get_runner", "router"]

router = APIRouter(tags=["jobs"])
_CREATE = threading.Lock()


def get_runner(request: Request, state: StateDep) -> JobRunner:
    """The app's job runner, made on first use (the app factory needs to know nothing of it)."""
    with _CREATE:
        runner: JobRunner | None = getattr(request.app.state, "wenda_jobs", None)
        if runner is None:
            runner = make_runner(state)
            request.app.state.wenda_jobs = runner
    return runner


def make_runner(state: State) -> JobRunner:
    s = state.settings
    return JobRunner(state.write_lock, abandon_after=s.job_abandon_s, max_queued=s.max_queued_jobs)


JobsDep = Annotated[JobRunner, Depends(get_runner)]


@router.get("/jobs/{job_id}", summary="An upload job: status, progress, and its result once done")
def get_job(job_id: str, _: WriterDep, runner: JobsDep) -> dict[str, Any]:
    return {"job": runner.get(job_id).to_dict()}


@router.delete("/jobs/{job_id}", summary="Cancel an upload job (the index is left as it was)")
def cancel_job(job_id: str, _: WriterDep, runner: JobsDep) -> JSONResponse:
    """200 once the job is finished (cancelled, or done before the cancel came); 202 while a
    running job is still stopping (it stops at its next embedding batch: poll ``GET /jobs/{id}``)."""
    job = runner.cancel(job_id)
    return JSONResponse({"job": job.to_dict()}, status_code=200 if job.status in FINISHED else 202)
