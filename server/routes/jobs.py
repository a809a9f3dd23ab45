"""``GET /jobs/{id}`` (progress, then the result) and ``DELETE /jobs/{id}`` (cancel) for upload jobs;
the same under ``/collections/{name}`` for that collection's jobs.

``POST /documents`` queues an ingest job on its collection's ``JobRunner`` (``rag.ingest.jobs``): one at a
time per collection, under that collection's writer lock, so readers keep their snapshots and
never wait for it. Polling a job also tells the runner its client is still there (a queued job
nobody polls is dropped unstarted). A job is found only under the collection it was queued on.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from rag.ingest.jobs import FINISHED
from server.deps import Writable

__all__ = ["router"]

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", summary="An upload job: status, progress, and its result once done")
def get_job(job_id: str, collection: Writable) -> dict[str, Any]:
    return {"job": collection.jobs.get(job_id).to_dict()}


@router.delete("/jobs/{job_id}", summary="Cancel an upload job (the index is left as it was)")
def cancel_job(job_id: str, collection: Writable) -> JSONResponse:
    """200 once the job is finished (cancelled, or done before the cancel came); 202 while a
    running job is still stopping (it stops at its next embedding batch: poll ``GET /jobs/{id}``)."""
    job = collection.jobs.cancel(job_id)
    return JSONResponse({"job": job.to_dict()}, status_code=200 if job.status in FINISHED else 202)
