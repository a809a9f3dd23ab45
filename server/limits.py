"""Limits enforced below the routes, before any request body is read.

``BodyLimit`` (ASGI middleware): a request its ``refusal`` check refuses (``server.access``: with
a keys file, any route but the public ones without a valid key; without one, a write route, i.e.
anything but GET/HEAD/OPTIONS under ``/documents``, ``/jobs`` or ``/collections``, without
RAG_API_KEY when that is set) gets its 401 before a byte of its body is read; every body is
counted as it arrives (chunked or not) and refused with 413 the moment it passes its route's
limit (uploads: ``max_upload_bytes`` plus multipart framing; anything else: ``max_body_bytes``),
or at once when its declared ``Content-Length`` is over.
Measured before: a chunked upload without the key streamed 500 MB to a temp file before its 401,
and a 400 MB JSON body to ``/ask`` was parsed (694 → 1,571 MB resident).

``header_timeout_protocol``: uvicorn's h11 protocol with a deadline on request headers (uvicorn
has none: a connection that never finishes its headers was held open forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.errors import error_body

__all__ = ["MULTIPART_SLACK", "BodyLimit", "Refusal", "authorized", "header_timeout_protocol", "is_upload",
           "is_write"]

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the uploaded files
_WRITE_PREFIXES = ("/documents", "/jobs", "/collections")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # OPTIONS: CORS preflights carry no credentials
# (method, path, Authorization) → (status, code, message) of a refusal sent before the body is read
Refusal = Callable[[str, str, str], tuple[int, str, str] | None]


def authorized(header: str, key: str | None) -> bool:
    """Does an ``Authorization`` header value carry ``Bearer <key>``? Always true without a key.
    Constant-time comparison, so response timing does not reveal how much of a guess was right."""
    if not key:
        return True
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def is_write(method: str, path: str) -> bool:
    """Routes that change the index (and so need the key)."""
    return method not in _SAFE_METHODS and any(
        path == p or path.startswith(p + "/") for p in _WRITE_PREFIXES)


def is_upload(method: str, path: str) -> bool:
    """``POST /documents`` and ``POST /collections/{name}/documents``: the upload limit applies."""
    return method == "POST" and (path == "/documents" or (
        path.startswith("/collections/") and path.endswith("/documents")))


class _Refused(Exception):
    """Raised from ``receive`` to stop the app once the refusal has been sent."""


class BodyLimit:
    """ASGI middleware: the key check (``refusal``), then the byte count on every body."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int,
                 refusal: Refusal | None = None) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes + MULTIPART_SLACK
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method, path = scope["method"], scope["path"]
        refused = self.refusal(method, path, headers.get("authorization", "")) if self.refusal else None
        if refused:
            status, code, message = refused
            await reply(send, status, code, message,
                        [(b"www-authenticate", b"Bearer")] if status == 401 else [])
            return
        limit = self.max_upload if is_upload(method, path) else self.max_body
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _reply_413(send, limit)
            return
        await _Counted(self.app, limit).run(scope, receive, send)


class _Counted:
    """One request: ``receive`` counts body bytes; past ``limit`` the 413 goes out (unless a
    response has started) and the app's own later messages are dropped."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self.received = 0
        self.started = self.refused = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_receive() -> Message:
            if self.refused:
                raise _Refused
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.refused = True
                    if not self.started:
                        await _reply_413(send, self.limit)
                        self.started = True
                    raise _Refused
            return message

        async def guarded_send(message: Message) -> None:
            if self.refused:  # the app reporting the error we raised: the 413 already went out
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        # FastAPI usually turns _Refused into a 400 first, which guarded_send drops
        with contextlib.suppress(_Refused):
            await self.app(scope, counting_receive, guarded_send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def reply(send: Send, status: int, code: str, message: str,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A whole JSON error response (``server.errors`` shape). ``Connection: close``: the client
    may still be sending a body nobody will read."""
    body = json.dumps(error_body(code, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _reply_413(send: Send, limit: int) -> None:
    await reply(send, 413, "payload_too_large", f"the request body is over the {limit}-byte limit")


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers are not all in
    ``seconds`` after it opened (or after the first byte of a later request on it)."""
    return type("HeaderTimeoutH11Protocol", (_HeaderTimeout,), {"header_timeout_s": seconds})


class _HeaderTimeout(H11Protocol):
    header_timeout_s = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # a later request on a kept-alive connection: its headers get the same time
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
