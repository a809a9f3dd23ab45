"""OpenAI-compatible ``POST /v1/chat/completions`` (plain or ``stream: true`` SSE) and
``GET /v1/models``, so the official ``openai`` client and chat UIs work unchanged.

The last user message is the question; the turns before it are the history that drives the
follow-up rewrite. Citations ride along as extra fields: ``message.citations`` (plain) or
``delta.citations`` on the final chunk (stream), plus the whole Answer JSON under ``wenda``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.client import split_messages
from rag.errors import RagError
from rag.schema import Answer
from server.deps import GeneratorDep, IndexDep, SettingsDep, StateDep
from server.errors import error_body
from server.routes.ask import answer, answer_stream

__all__ = ["MODEL_ID", "router"]

MODEL_ID = "wenda"
_STARTED = int(time.time())
log = logging.getLogger("wenda.server")
router = APIRouter(prefix="/v1", tags=["openai"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields wenda reads; the rest (temperature, max_tokens, ...) is accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    top_k: int | None = None


def _envelope(kind: str, model: str, cid: str) -> dict[str, Any]:
    return {"id": cid, "object": kind, "created": int(time.time()), "model": model}


def _citations(a: Answer) -> list[dict[str, Any]]:
    return [c.model_dump() for c in a.citations]


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def _events(items: Iterator[str | Answer], model: str, cid: str) -> Iterator[str]:
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


@router.post("/chat/completions", summary="OpenAI-compatible chat completion", response_model=None)
def chat_completions(body: ChatRequest, state: StateDep, index: IndexDep, settings: SettingsDep,
                     generator: GeneratorDep) -> dict[str, Any] | StreamingResponse:
    question, history = split_messages([m.model_dump() for m in body.messages])
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        items = answer_stream(state, index, settings, generator, question, history, body.top_k)
        return StreamingResponse(_events(items, body.model, cid), media_type="text/event-stream",
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
