"""``GET /documents``, ``POST /documents`` (multipart upload → an ingest job), ``DELETE /documents/{id}``
for the default collection; ``server.routes.collections`` mounts the same routes (and the jobs')
under ``/collections/{name}`` for the others.

Uploads are checked and parsed before anything is written: size (``max_upload_bytes`` → 413),
type (sniffed from the bytes by ``rag.loaders``; an unknown type, or a suffix that names another
binary format than the content, → 415), name (only a safe stem of the basename survives, shortened
to ``MAX_STEM_BYTES`` with a hash; it becomes the doc_id), and content (encrypted, corrupt,
undecodable → 400; over ``max_pages``, ``max_document_chars`` or ``max_unpacked_bytes`` → 413).

An upload may carry tags (repeated form field ``tags``): they replace the uploaded documents' given
tags (Markdown front matter's stay). The ingest then runs as a job on the collection's runner
(``rag.ingest.jobs``, ``GET /jobs/{id}``): 202 with the job at once, or, with ``?wait=true``, 200 with the
ingest report once it is done. The job writes the files aside in the collection's ``uploads/``
first (a file that cannot be stored fails the job before the index changes), ingests under the
collection's writer lock (readers keep their snapshots), and only after the commit moves the files
into place, so every upload the index lists is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from rag.config import Settings
from rag.errors import DocumentError, InputError, NotFoundError, RagError, UnsupportedFormatError
from rag.ingest import delete_documents, ingest
from rag.ingest.documents import SUPPORTED_SUFFIXES, Document
from rag.ingest.jobs import Job, JobRunner
from rag.loaders import SUFFIXES, TEXT_TYPES, extract, sniff
from rag.store.collections import DEFAULT
from rag.store.durable import sweep_temp_files
from rag.store.filters import clean_tags
from server.deps import Collection, Readable, SettingsDep, Writable
from server.errors import ApiError, error_body
from server.routes import jobs

__all__ = ["MAX_STEM_BYTES", "router", "safe_name"]

router = APIRouter(tags=["documents"])
router.include_router(jobs.router)  # an upload's status: served wherever uploads are (no app.py change)
_UNSAFE = re.compile(r"[^\w.\-]+")
MAX_STEM_BYTES = 150  # file names may have 255 bytes, and a Chinese character takes 3
_EMBED_BATCH = 16  # chunks between progress reports and cancel checks (~2-5 s on 2 cores)
Staged = dict[str, tuple[Path, bytes, Document]]  # doc_id → (where it is stored, bytes, document)


def safe_name(filename: str | None) -> tuple[str, str]:
    """``(stem, suffix)`` of an uploaded name: basename only, unsafe characters → ``_``; a stem
    over ``MAX_STEM_BYTES`` keeps its start and gets a hash of the whole (two long names that
    start alike stay apart).

    >>> safe_name("../../etc/秦创原 简介.TXT")
    ('秦创原_简介', '.txt')
    >>> stem, suffix = safe_name("长" * 60 + ".md")
    >>> stem.startswith("长" * 47), stem[-9:], suffix
    (True, '-9f944da2', '.md')
    """
    base = unicodedata.normalize("NFC", re.split(r"[\\/]", filename or "")[-1]).strip()
    path = Path(base)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ApiError(415, "unsupported_media_type",
                       f"{base or '(no name)'}: unsupported file type {suffix or '(none)'};"
                       f" supported: {', '.join(SUPPORTED_SUFFIXES)}")
    stem = _UNSAFE.sub("_", path.stem).strip("._ ")
    if not stem:
        raise InputError(f"{base!r}: the file name has no usable characters")
    return _shorten(stem), suffix


def _shorten(stem: str) -> str:
    data = stem.encode("utf-8")
    if len(data) <= MAX_STEM_BYTES:
        return stem
    start = data[:MAX_STEM_BYTES - 9].decode("utf-8", "ignore").rstrip("._ ")  # whole characters
    return f"{start}-{hashlib.sha256(data).hexdigest()[:8]}"


def _read(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large",
                       f"{upload.filename}: larger than the {limit}-byte upload limit")
    return data


@router.get("/documents", summary="Documents in the collection (with their tags and ingested_at)")
def list_documents(collection: Readable) -> dict[str, Any]:
    index = collection.snapshot()
    docs = [{**asdict(d), "path": _shown(d.path, d.doc_id, index.directory),
             "source": _shown(d.source, d.doc_id, index.directory)} for d in index.documents()]
    return {"documents": docs, "count": len(docs)}


def _shown(path: str, doc_id: str, index_dir: Path) -> str:
    """A path as anyone may see it: an upload relative to the index (``uploads/x.pdf``), a file
    from an ingested folder relative to that folder (its doc_id and suffix), never the server's
    own absolute paths.

    >>> _shown("/srv/wenda/.rag/uploads/a.pdf", "a", Path("/srv/wenda/.rag"))
    'uploads/a.pdf'
    >>> _shown("/home/me/team/policy/h.pdf", "policy/h", Path("/srv/.rag"))
    'policy/h.pdf'
    >>> _shown("报告.pdf", "报告", Path("."))
    '报告.pdf'
    """
    given = Path(path)
    if not given.is_absolute():
        return path
    try:
        return given.relative_to(index_dir.resolve()).as_posix()
    except ValueError:
        return doc_id if doc_id.endswith(given.suffix) else doc_id + given.suffix


def _check_type(data: bytes, name: str, suffix: str) -> None:
    """The content decides the format; a suffix naming another binary format is a lie we refuse
    (a text file saved as .md or an HTML page saved as .txt is fine)."""
    sniffed, claimed = sniff(data, name), SUFFIXES[suffix]
    if sniffed != claimed and not (sniffed in TEXT_TYPES and claimed in TEXT_TYPES):
        raise UnsupportedFormatError(f"{name}: the name says {claimed} but the content is {sniffed}")


def _stage(files: list[UploadFile], settings: Settings, uploads: Path) -> Staged:
    """Check and parse every upload (any refusal raises here, before anything is written)."""
    uploads = uploads.absolute()  # stored paths work from any directory
    budget = settings.max_upload_bytes
    staged: Staged = {}
    for upload in files:
        stem, suffix = safe_name(upload.filename)
        data = _read(upload, budget)
        budget -= len(data)
        if stem in staged:
            raise InputError(f"two uploads map to the same doc_id {stem!r}")
        name = f"{upload.filename}"
        _check_type(data, name, suffix)
        extracted = extract(data, name, settings.limits())
        if not extracted.text.strip():
            raise DocumentError(f"{name}: the file is empty")
        target = uploads / f"{stem}{suffix}"
        staged[stem] = (target, data, Document.from_extracted(
            stem, extracted, path=str(target), source=name,
            source_sha256=hashlib.sha256(data).hexdigest()))
    return staged


@router.post("/documents", status_code=202, summary="Upload documents and ingest them (a job)",
             responses={200: {"description": "with ?wait=true: the ingest report"},
                        202: {"description": "the job; poll the Location (GET /jobs/{id})"}})
async def upload_documents(
        request: Request,
        files: Annotated[list[UploadFile], File(description="text, Markdown, PDF, Word, PowerPoint,"
                                                            " Excel, HTML or image files")],
        collection: Writable, settings: SettingsDep,
        tags: Annotated[list[str] | None, Form(description="tags for the uploaded documents (repeat the"
                                                           " field for several)")] = None,
        wait: Annotated[bool, Query(description="wait for the ingest and answer 200 with its report"
                                                " (as before jobs)")] = False) -> JSONResponse:
    runner = collection.jobs
    if runner.full():
        return JSONResponse(error_body("busy", f"{settings.max_queued_jobs} uploads are waiting already;"
                                               " try again later"), status_code=503,
                            headers={"Retry-After": "30"})
    given = None if tags is None else clean_tags(tags)
    staged = await run_in_threadpool(_stage, files, settings, collection.index.directory / "uploads")
    job = runner.submit(partial(_run_upload, collection, settings, staged, given), documents=list(staged))
    if not wait:
        return JSONResponse({"job": job.to_dict()}, status_code=202,
                            headers={"Location": _job_path(collection, job.id)})
    await _wait(request, job, runner)
    if job.status == "done":
        return JSONResponse(job.result)
    if job.status == "cancelled":
        raise ApiError(409, "cancelled", str(job.error))
    raise job.error or RagError("the upload job failed")


def _job_path(collection: Collection, job_id: str) -> str:
    return (f"/jobs/{job_id}" if collection.name == DEFAULT
            else f"/collections/{collection.name}/jobs/{job_id}")


async def _wait(request: Request, job: Job, runner: JobRunner) -> None:
    """Until ``job`` is finished; if the client hangs up first, a job not started yet is dropped."""
    while not job.finished.is_set():
        if await request.is_disconnected():
            if job.status == "queued":
                runner.cancel(job.id)
            return
        runner.get(job.id)  # marks the job as asked about: its client is still there
        await asyncio.sleep(0.1)


def _run_upload(collection: Collection, settings: Settings, staged: Staged, tags: tuple[str, ...] | None,
                job: Job) -> dict[str, Any]:
    """The job: store the files aside, ingest, then move the files into place (see the module)."""
    uploads = next(iter(staged.values()))[0].parent
    aside = _write_aside(uploads, staged)
    try:
        report = ingest(collection.index, [doc for _, _, doc in staged.values()],
                        chunk_size=settings.chunk_size, overlap=settings.chunk_overlap,
                        batch=_EMBED_BATCH, progress=job.progress, cancelled=job.cancelled,
                        max_chunks=settings.max_job_chunks, tags=tags)
    except BaseException:
        for stored in aside.values():
            stored.unlink(missing_ok=True)
        raise
    for stem, (target, _data, _doc) in staged.items():
        os.replace(aside[stem], target)  # a rename within one folder: it does not fail for want of space
        _remove_uploads(uploads, stem, keep=target.name)
    _sync_folder(uploads)
    return {"documents": list(staged), **asdict(report)}


def _write_aside(uploads: Path, staged: Staged) -> dict[str, Path]:
    """Each upload in a temp file in ``uploads`` (fsynced); a failure removes them and raises."""
    aside: dict[str, Path] = {}
    try:
        uploads.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(uploads)  # what a killed job left
        for stem, (_target, data, _doc) in staged.items():
            fd, tmp = tempfile.mkstemp(dir=uploads, prefix=f".upload.{os.getpid()}.")
            aside[stem] = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        for stored in aside.values():
            stored.unlink(missing_ok=True)
        raise RagError(f"cannot store the upload in {uploads}: {exc.strerror}; the index is unchanged"
                       ) from exc
    return aside


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@router.delete("/documents/{doc_id:path}", summary="Remove a document from the collection")
def delete_document(doc_id: str, collection: Writable) -> dict[str, Any]:
    with collection.write_lock:
        index = collection.index
        if not delete_documents(index, [doc_id]):
            raise NotFoundError(f"no document {doc_id!r} in the index")
        _remove_uploads(index.directory / "uploads", doc_id)
    return {"deleted": doc_id}


def _remove_uploads(uploads: Path, stem: str, keep: str | None = None) -> None:
    """Delete stored uploads named ``stem.*`` (compared, never joined: no path is built from input)."""
    if not uploads.is_dir():
        return
    for f in uploads.iterdir():
        if f.is_file() and f.stem == stem and f.suffix.lower() in SUPPORTED_SUFFIXES and f.name != keep:
            f.unlink()
