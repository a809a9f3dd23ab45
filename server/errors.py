"""One place that turns every failure into ``{"error": {"code", "message"}}`` with a status.

    RagError subclass            status  error.code
    InputError                   400     invalid_input
    UnsupportedFormatError       415     unsupported_media_type
    DocumentTooLargeError        413     document_too_large
    DocumentError                400     invalid_document
    NotFoundError                404     not_found
    IndexStateError              503     index_error (incompatible_index for the subclass)
    ModelError                   503     model_error
    RagError (anything else)     500     rag_error
    ApiError (raised by routes)  its own status and code (401, 413, 415, ...), among them:
      no usable key              401     unauthorized (server.access)
      a key without the right    403     forbidden (on a collection it may read; else 404)
      collection exists          409     exists (POST /collections)
      unknown model              404     model_not_found (/v1/chat/completions)
    too many requests            429     rate_limited (server.ratelimit, before any route runs)
    no key where one is needed   401     unauthorized (server.limits, before the body is read)
    body over its limit          413     payload_too_large (server.limits, while it is read)
    request validation           422     invalid_input
    unknown route / method       404 / 405   not_found / method_not_allowed
    anything unexpected          500     internal_error (details go to the log, not the client)

Bad input never reaches the last line: every check a route does raises one of the above.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    DocumentError,
    DocumentTooLargeError,
    IndexStateError,
    InputError,
    ModelError,
    NotFoundError,
    RagError,
    UnsupportedFormatError,
)

__all__ = ["ApiError", "error_body", "install", "status_for"]

log = logging.getLogger("wenda.server")

_STATUS: list[tuple[type[RagError], int]] = [
    (InputError, 400),
    (UnsupportedFormatError, 415),
    (DocumentTooLargeError, 413),
    (DocumentError, 400),
    (NotFoundError, 404),
    (IndexStateError, 503),
    (ModelError, 503),
]
_HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               429: "rate_limited"}


class ApiError(Exception):
    """An HTTP-level refusal a route raises itself (auth, size, media type, retry later)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def status_for(exc: RagError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def _json(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_rag(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RagError)
        status = status_for(exc)
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        return _json(status, exc.code, str(exc))

    async def on_api(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _json(exc.status, exc.code, exc.message, {**headers, **exc.headers} or None)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _json(422, "invalid_input", _validation_message(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _json(exc.status_code, code, str(exc.detail), dict(exc.headers or {}) or None)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return _json(500, "internal_error", "internal server error")

    app.add_exception_handler(RagError, on_rag)
    app.add_exception_handler(ApiError, on_api)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
