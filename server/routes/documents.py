"""``GET /documents``, ``POST /documents`` (multipart upload → ingest), ``DELETE /documents/{id}``.

Uploads are checked and parsed before anything is written: size (``max_upload_bytes`` → 413),
type (sniffed from the bytes by ``rag.loaders``; an unknown type, or a suffix that names another
binary format than the content, → 415), name (only a safe stem of the basename survives; it becomes
the doc_id), and content (encrypted, corrupt, undecodable → 400; over ``max_pages``,
``max_document_chars`` or ``max_unpacked_bytes`` → 413). The files are then ingested under the
server's writer lock (the index reloads atomically; questions in flight keep reading their
snapshot) and kept in ``<index_dir>/uploads/`` so they persist with the index.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.documents import SUPPORTED_SUFFIXES, Document
from rag.durable import atomic_write
from rag.errors import DocumentError, InputError, NotFoundError, UnsupportedFormatError
from rag.ingest import delete_documents, ingest
from rag.loaders import SUFFIXES, TEXT_TYPES, extract, sniff
from server.deps import IndexDep, SettingsDep, StateDep, WriterDep, live_index
from server.errors import ApiError, error_body

__all__ = ["UploadLimit", "router", "safe_name"]

router = APIRouter(tags=["documents"])
_UNSAFE = re.compile(r"[^\w.\-]+")
_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the files


def safe_name(filename: str | None) -> tuple[str, str]:
    """``(stem, suffix)`` of an uploaded name: basename only, unsafe characters → ``_``.

    >>> safe_name("../../etc/秦创原 简介.TXT")
    ('秦创原_简介', '.txt')
    """
    base = unicodedata.normalize("NFC", re.split(r"[\\/]", filename or "")[-1]).strip()
    path = Path(base)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ApiError(415, "unsupported_media_type",
                       f"{base or '(no name)'}: unsupported file type {suffix or '(none)'};"
                       f" supported: {', '.join(SUPPORTED_SUFFIXES)}")
    stem = _UNSAFE.sub("_", path.stem).strip("._ ")[:120]
    if not stem:
        raise InputError(f"{base!r}: the file name has no usable characters")
    return stem, suffix


def _read(upload: UploadFile, limit: int) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "payload_too_large",
                       f"{upload.filename}: larger than the {limit}-byte upload limit")
    return data


@router.get("/documents", summary="Documents in the index")
def list_documents(index: IndexDep) -> dict[str, Any]:
    docs = [asdict(d) for d in index.documents()]
    return {"documents": docs, "count": len(docs)}


def _check_type(data: bytes, name: str, suffix: str) -> None:
    """The content decides the format; a suffix naming another binary format is a lie we refuse
    (a text file saved as .md or an HTML page saved as .txt is fine)."""
    sniffed, claimed = sniff(data, name), SUFFIXES[suffix]
    if sniffed != claimed and not (sniffed in TEXT_TYPES and claimed in TEXT_TYPES):
        raise UnsupportedFormatError(f"{name}: the name says {claimed} but the content is {sniffed}")


@router.post("/documents", summary="Upload documents and ingest them")
def upload_documents(
        files: Annotated[list[UploadFile], File(description="text, Markdown, PDF, Word, PowerPoint,"
                                                            " Excel, HTML or image files")],
        _: WriterDep, state: StateDep, settings: SettingsDep) -> dict[str, Any]:
    uploads = settings.index_dir / "uploads"
    budget = settings.max_upload_bytes
    staged: dict[str, tuple[Path, bytes, Document]] = {}
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
    with state.write_lock:
        report = ingest(live_index(state), [doc for _, _, doc in staged.values()],
                        chunk_size=settings.chunk_size, overlap=settings.chunk_overlap)
        uploads.mkdir(parents=True, exist_ok=True)
        for stem, (target, data, _doc) in staged.items():
            _remove_uploads(uploads, stem, keep=target.name)
            atomic_write(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
    return {"documents": list(staged), **asdict(report)}


@router.delete("/documents/{doc_id:path}", summary="Remove a document from the index")
def delete_document(doc_id: str, _: WriterDep, state: StateDep) -> dict[str, Any]:
    with state.write_lock:
        index = live_index(state)
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


class UploadLimit:
    """Refuse an upload whose declared ``Content-Length`` is over the limit before it is read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit + _MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/documents":
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.limit:
                await _reply_413(send, self.limit)
                return
        await self.app(scope, receive, send)


async def _reply_413(send: Send, limit: int) -> None:
    import json

    body = json.dumps(error_body("payload_too_large", f"the upload is over {limit} bytes")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
