"""OpenAI-compatible ``POST /v1/chat/completions`` (plain or ``stream: true`` SSE) and
``GET /v1/models``, so the official ``openai`` client and chat UIs work unchanged.

The last user message is the question; the turns before it are the history that drives the
follow-up rewrite. Citations ride along as extra fields: ``message.citations`` (plain) or
``delta.citations`` on the final chunk (stream), plus the whole Answer JSON under ``wenda``.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.client import split_messages
from rag.errors import RagError
from rag.schema import Answer
from server.deps import GeneratorDep, IndexDep, SettingsDep, StateDep
from server.errors import ApiError, error_body
from server.routes.ask import answer, answer_stream

__all__ = ["MODEL_ID", "router"]

MODEL_ID = "wenda"
_STARTED = int(time.time())
log = logging.getLogger("wenda.server")
router = APIRouter(prefix="/v1", tags=["openai"])
_MODEL = re.compile(r"wenda(/[\w.:\-]+)?")  # echoed back: no lone surrogates, nothing huge
_MAX_MODEL_CHARS = 100


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields wenda reads; the rest (temperature, max_tokens, ...) is accepted and ignored,
    except what would change the reply's shape (``n``, tools, ``response_format``): refused."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = None


def check_supported(body: ChatRequest) -> None:
    """400 ``unsupported`` for a model or an option this server cannot honour (it used to answer
    anyway, and echoed any model name: a 1 MB name made a 1 MB reply)."""
    extra = body.model_extra or {}
    problems = []
    if len(body.model) > _MAX_MODEL_CHARS or not _MODEL.fullmatch(body.model):
        problems.append(f"model must be {MODEL_ID!r} (or {MODEL_ID}/<name>, at most {_MAX_MODEL_CHARS}"
                        " characters)")
    if extra.get("n") not in (None, 1):
        problems.append("n must be 1")
    for name in ("tools", "functions"):
        if extra.get(name):
            problems.append(f"{name} are not supported")
    for name in ("tool_choice", "function_call"):
        if extra.get(name) not in (None, "none"):
            problems.append(f"{name} is not supported")
    response_format = extra.get("response_format")
    if response_format not in (None, {"type": "text"}):
        problems.append('response_format must be {"type": "text"}')
    if problems:
        raise ApiError(400, "unsupported", "; ".join(problems))


def _envelope(kind: str, model: str, cid: str) -> dict[str, Any]:
    return {"id": cid, "object": kind, "created": int(time.time()), "model": model}


def _citations(a: Answer) -> list[dict[str, Any]]:
    return [c.model_dump() for c in a.citations]


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _events(items: Iterator[str | Answer], model: str, cid: str) -> Generator[str, None, None]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**_envelope("chat.completion.chunk", model, cid), "choices": [choice]}

    yield _sse(chunk({"role": "assistant", "content": ""}))
    try:
        for item in items:
            if isinstance(item, Answer):
                final = chunk({"citations": _citations(item)}, "stop")
                yield _sse({**final, "citations": _citations(item), "wenda": item.model_dump()})
            elif item:
                yield _sse(chunk({"content": item}))
    except RagError as exc:  # the stream has started: report in-band, as OpenAI does
        yield _sse(error_body(exc.code, str(exc)))
    except Exception:
        log.exception("chat stream failed")
        yield _sse(error_body("internal_error", "internal server error"))
    yield _sse("[DONE]")


async def until_disconnected(request: Request, events: Generator[str, None, None]) -> AsyncIterator[str]:
    """``events``, each produced in a worker thread, until the client goes away: then the
    generator is closed, which stops the model stream behind it (it used to run to the end)."""
    end = object()
    try:
        while (event := await run_in_threadpool(next, events, end)) is not end:
            yield str(event)
            if await request.is_disconnected():
                log.info("chat stream: the client disconnected; generation stopped")
                return
    finally:
        events.close()


@router.post("/chat/completions", summary="OpenAI-compatible chat completion", response_model=None)
def chat_completions(body: ChatRequest, request: Request, state: StateDep, index: IndexDep,
                     settings: SettingsDep, generator: GeneratorDep) -> dict[str, Any] | StreamingResponse:
    check_supported(body)
    question, history = split_messages([m.model_dump() for m in body.messages])
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        items = answer_stream(state, index, settings, generator, question, history, body.top_k)
        return StreamingResponse(until_disconnected(request, _events(items, body.model, cid)),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    a = answer(state, index, settings, generator, question, history, body.top_k)
    message = {"role": "assistant", "content": a.answer, "citations": _citations(a)}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {**_envelope("chat.completion", body.model, cid), "choices": [choice],
            "citations": _citations(a), "wenda": a.model_dump()}


@router.get("/models", summary="The one model this server answers with")
def models() -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": _STARTED, "owned_by": "wenda"}]}
