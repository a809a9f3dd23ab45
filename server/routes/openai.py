"""OpenAI-compatible ``POST /v1/chat/completions`` (plain or ``stream: true`` SSE) and
``GET /v1/models``, so the official ``openai`` client and chat UIs work unchanged.

Each collection is a model: ``wenda`` the default one, ``wenda/<name>`` any other; ``/v1/models``
lists the ones the caller may read, and any other model (or one it may not read: the same reply)
is 404 ``model_not_found``. An extra body field ``filter`` limits the documents, as on ``/ask``.

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

from rag.errors import InputError, NotFoundError, RagError
from rag.messages import split_messages
from rag.schema import Answer
from rag.store.collections import DEFAULT
from server.deps import Collection, Collections, CollectionsDep, GeneratorDep, SettingsDep
from server.errors import ApiError, error_body
from server.routes.ask import FilterSpec, answer, answer_stream

__all__ = ["MODEL_ID", "router"]

MODEL_ID = "wenda"
_STARTED = int(time.time())
log = logging.getLogger("wenda.server")
router = APIRouter(prefix="/v1", tags=["openai"])
_MODEL = re.compile(r"[\w.:/\-]{1,100}")  # a model name shown in a message: nothing odd, nothing huge


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
    filter: FilterSpec | None = Field(default=None, description="limit the documents (as on /ask)")


def check_supported(body: ChatRequest) -> None:
    """400 ``unsupported`` for an option this server cannot honour (it used to ignore them)."""
    extra = body.model_extra or {}
    problems = []
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


def model_collection(collections: Collections, model: str) -> Collection:
    """The collection a model names, if the caller may read it; else 404 ``model_not_found``,
    the same for a model that does not exist and one the caller may not use. The name is shown
    only when it is short and plain (a 1 MB name made a 1 MB reply; a lone surrogate, a 500)."""
    name = DEFAULT if model == MODEL_ID else model.removeprefix(MODEL_ID + "/")
    try:
        if name == model:
            raise NotFoundError(model)
        return collections.get(name)
    except (NotFoundError, InputError):
        shown = repr(model) if _MODEL.fullmatch(model) else "requested"
        raise ApiError(404, "model_not_found", f"the model {shown} does not exist; GET /v1/models lists"
                                               " the models you may use") from None


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
def chat_completions(body: ChatRequest, request: Request, collections: CollectionsDep,
                     settings: SettingsDep, generator: GeneratorDep) -> dict[str, Any] | StreamingResponse:
    check_supported(body)
    collection = model_collection(collections, body.model)
    question, history = split_messages([m.model_dump() for m in body.messages])
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        items = answer_stream(collection, settings, generator, question, history, body.top_k, body.filter)
        return StreamingResponse(until_disconnected(request, _events(items, body.model, cid)),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    a = answer(collection, settings, generator, question, history, body.top_k, body.filter)
    message = {"role": "assistant", "content": a.answer, "citations": _citations(a)}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {**_envelope("chat.completion", body.model, cid), "choices": [choice],
            "citations": _citations(a), "wenda": a.model_dump()}


@router.get("/models", summary="The models (collections) this caller may ask")
def models(collections: CollectionsDep) -> dict[str, Any]:
    ids = [MODEL_ID if name == DEFAULT else f"{MODEL_ID}/{name}" for name in collections.names()]
    return {"object": "list",
            "data": [{"id": i, "object": "model", "created": _STARTED, "owned_by": "wenda"} for i in ids]}
