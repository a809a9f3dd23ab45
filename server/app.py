"""The FastAPI app: ``create_app`` (factory), its lifespan (reads the keys file, loads the index and
the generator once), and ``run`` (uvicorn, for ``rag serve``).

Tests build the app around an index they made (``create_app(settings, index=...)``); ``rag
serve`` lets the lifespan open ``settings.index_dir`` (building it from the seeds when empty).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from rag.answer.generate import Generator
from rag.answer.reading import Judge
from rag.config import Settings, get_settings
from rag.store.backend import SearchBackend
from server.deps import State
from server.errors import install as install_errors
from server.limits import BodyLimit, header_timeout_protocol
from server.ratelimit import RateLimit
from server.routes import ask, collections, documents, health, openai, web

__all__ = ["create_app", "run", "uvicorn_options"]

log = logging.getLogger("wenda.server")


def _load(state: State) -> None:
    from rag.bootstrap import make_generator, make_judge, open_index

    state.access.load()  # a bad keys file stops startup (ConfigError)
    judge = make_judge(state.settings)  # RAG_READER on without its weights stops startup (ModelError)
    if state.index is None:
        log.info("opening the index in %s", state.settings.index_dir)
        state.index = open_index(state.settings)
    if state.generator is None:
        state.generator = make_generator(state.settings)
    _warm(state.index, judge)


def _warm(index: SearchBackend, judge: Judge | None) -> None:
    """Ask in Chinese and in English before serving, so what the query path loads on first use
    (jieba's dictionary and tagger, the cross-lingual dictionary, the embedder's first run) is loaded
    here, once: under 50 concurrent first requests each thread loaded its own copy, and the first
    ~40 s of a load run stalled (p95 44 s against 5 s once warm). With the reader on, it reads too:
    its first forward pass costs ~250 ms more than the next ones (seeds, 2 cores)."""
    from rag.answer.generate import load_generator
    from rag.qa import ask

    extractive = load_generator("extractive")
    for question in ("这些文件讲了什么?", "这些文件是由谁编写的?", "What are these documents about?"):
        ask(index, question, generator=extractive, reader=judge)


def create_app(settings: Settings | None = None, index: SearchBackend | None = None,
               generator: Generator | None = None) -> FastAPI:
    """The wenda HTTP app. Whatever is not passed in is loaded once, at startup."""
    state = State(settings or get_settings(), index, generator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_load, state)
        yield

    app = FastAPI(title="wenda", version="0.1.0", lifespan=lifespan,
                  summary="Chinese-first question answering over your documents, with citations")
    app.state.wenda = state
    install_errors(app)
    for module in (ask, openai, documents, collections, health, web):
        app.include_router(module.router)
    # outermost last: CORS, then the rate limit, then the key and body checks
    app.add_middleware(BodyLimit, max_body_bytes=state.settings.max_body_bytes,
                       max_upload_bytes=state.settings.max_upload_bytes, refusal=state.access.refusal)
    if state.settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=state.settings.rate_limit_per_minute)
    if state.settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=state.settings.cors_origins,
                           allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def run(host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None) -> None:
    """Serve the app with uvicorn until interrupted (``rag serve``).

    Idle connections stay open ``keep_alive_s`` (75 s): uvicorn's default of 5 s equals httpx's
    client-side expiry, and a client reusing a connection at the moment the server closes it
    gets a reset (measured: 1-5 ``ReadError`` in 4 of 14 load runs, each at a keep-alive timeout).
    """
    import uvicorn

    settings = settings or get_settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", **uvicorn_options(settings))


_MAX_HEADER_BYTES = 16 * 1024  # request line and headers together (h11's own default, made explicit)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The connection-level limits ``rag serve`` runs uvicorn with.

    ``X-Forwarded-For`` is believed only from ``RAG_TRUSTED_PROXIES``: uvicorn's default trusts
    it from 127.0.0.1, so a local client (or a co-hosted proxy that passes the header through) sent
    a new address each request and the rate limit never saw the same client twice (40 of 40 at 30/min).
    """
    trusted = settings.trusted_proxies.strip()
    # "http": h11 with a deadline on request headers (neither uvicorn protocol has one)
    return {"timeout_keep_alive": settings.keep_alive_s, "proxy_headers": bool(trusted),
            "forwarded_allow_ips": trusted, "h11_max_incomplete_event_size": _MAX_HEADER_BYTES,
            "http": header_timeout_protocol(settings.header_timeout_s)}
