"""A per-client token bucket: ``rate_limit_per_minute`` requests a minute per client address.

Each client (the peer address uvicorn reports: the TCP peer itself, or, only when that peer is
one of ``RAG_TRUSTED_PROXIES``, the client its ``X-Forwarded-For`` names; see
``server.app.uvicorn_options``) has a bucket of ``burst`` tokens (default: one
minute's worth) refilled at ``per_minute / 60`` tokens a second; a request takes one token or is
refused with 429, ``error.code == "rate_limited"`` and a ``Retry-After`` header. ``/health`` is
never limited (liveness probes). The buckets live in memory, one set per process, and the
least recently seen clients are forgotten past ``max_clients`` (a forgotten client starts full).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import error_body

__all__ = ["RateLimit", "TokenBuckets"]


class TokenBuckets:
    """``take(client)`` → 0.0 when a token was taken, else the seconds until one is free.

    >>> clock = iter([0.0, 0.0, 0.0, 30.0]).__next__
    >>> buckets = TokenBuckets(per_minute=2, clock=clock)
    >>> [buckets.take("a"), buckets.take("a"), buckets.take("a"), buckets.take("a")]
    [0.0, 0.0, 30.0, 0.0]
    """

    def __init__(self, per_minute: int, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst or per_minute)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class RateLimit:
    """ASGI middleware applying ``TokenBuckets`` to every HTTP request except ``exempt`` paths."""

    def __init__(self, app: ASGIApp, per_minute: int, burst: int | None = None,
                 exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute, burst)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.exempt:
            client = scope.get("client")
            wait = self.buckets.take(client[0] if client else "unknown")
            if wait > 0:
                await _reply_429(send, wait)
                return
        await self.app(scope, receive, send)


async def _reply_429(send: Send, wait: float) -> None:
    retry = max(1, math.ceil(wait))
    body = json.dumps(error_body("rate_limited", f"too many requests; retry in {retry} s")).encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"retry-after", str(retry).encode())]})
    await send({"type": "http.response.body", "body": body})
