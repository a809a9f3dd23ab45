"""``POST /ask``: one question (with optional history) → the Answer JSON of DESIGN.md."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from rag.config import Settings
from rag.errors import InputError
from rag.generate import Generator
from rag.index import Index
from rag.qa import ask, stream_ask
from rag.schema import Answer, Message
from server.deps import GeneratorDep, IndexDep, SettingsDep

__all__ = ["AskRequest", "answer", "answer_stream", "router"]

router = APIRouter(tags=["ask"])


class AskRequest(BaseModel):
    question: str = Field(description="the question, in Simplified or Traditional Chinese or English")
    history: list[Message] = Field(default=[], description="earlier turns, oldest first")
    top_k: int | None = Field(default=None, description="passages to retrieve (default from settings)")


def _kwargs(settings: Settings, generator: Generator | None, top_k: int | None) -> dict[str, Any]:
    k = settings.top_k if top_k is None else top_k
    if not 1 <= k <= settings.max_top_k:
        raise InputError(f"top_k must be between 1 and {settings.max_top_k}, not {k}")
    return {"top_k": k, "generator": generator, "max_question_chars": settings.max_question_chars,
            "refuse_below": settings.refuse_below}


def answer(index: Index, settings: Settings, generator: Generator | None, question: str,
           history: Sequence[Message] = (), top_k: int | None = None) -> Answer:
    """``rag.qa.ask`` with the server's settings."""
    return ask(index, question, history=history, **_kwargs(settings, generator, top_k))


def answer_stream(index: Index, settings: Settings, generator: Generator | None, question: str,
                  history: Sequence[Message] = (), top_k: int | None = None,
                  ) -> Iterator[str | Answer]:
    """``rag.qa.stream_ask``, primed: bad input raises here, before any byte is sent."""
    items = stream_ask(index, question, history=history, **_kwargs(settings, generator, top_k))
    first = next(items)

    def rest() -> Iterator[str | Answer]:
        yield first
        yield from items

    return rest()


@router.post("/ask", response_model=Answer, summary="Answer a question with verified citations")
def post_ask(body: AskRequest, index: IndexDep, settings: SettingsDep,
             generator: GeneratorDep) -> Answer:
    return answer(index, settings, generator, body.question, body.history, body.top_k)
