"""``POST /ask``: one question (with optional history) → the Answer JSON of DESIGN.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, Field

from rag.config import Settings
from rag.errors import IndexStateError, InputError, NotFoundError
from rag.generate import Generator
from rag.index import Index
from rag.qa import ask, stream_ask
from rag.schema import Answer, Message
from server.deps import GeneratorDep, IndexDep, SettingsDep, State, StateDep, current_index

__all__ = ["AskRequest", "answer", "answer_stream", "router"]

router = APIRouter(tags=["ask"])
T = TypeVar("T")


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


def _settled(state: State, index: Index, call: Callable[[Index], T]) -> T:
    """``call(index)``, once more on a current snapshot if a write removed or changed a document
    under it.

    A snapshot reads document texts from the docstore lazily (checked against the state it
    loaded), so a write that commits between retrieval and quoting surfaces as ``NotFoundError``;
    ``ask`` names no documents itself, so that error always means the index changed.
    """
    try:
        return call(index)
    except NotFoundError:
        pass
    try:
        return call(current_index(state))
    except NotFoundError as exc:
        raise IndexStateError("the index changed while answering; please ask again") from exc


def answer(state: State, index: Index, settings: Settings, generator: Generator | None,
           question: str, history: Sequence[Message] = (), top_k: int | None = None) -> Answer:
    """``rag.qa.ask`` with the server's settings."""
    kwargs = _kwargs(settings, generator, top_k)
    return _settled(state, index, lambda ix: ask(ix, question, history=history, **kwargs))


def answer_stream(state: State, index: Index, settings: Settings, generator: Generator | None,
                  question: str, history: Sequence[Message] = (), top_k: int | None = None,
                  ) -> Iterator[str | Answer]:
    """``rag.qa.stream_ask``, primed: bad input raises here, before any byte is sent (and so
    does retrieval, which reads every document text the answer will quote)."""
    kwargs = _kwargs(settings, generator, top_k)

    def start(ix: Index) -> tuple[str | Answer, Iterator[str | Answer]]:
        items = stream_ask(ix, question, history=history, **kwargs)
        return next(items), items

    first, items = _settled(state, index, start)

    def rest() -> Iterator[str | Answer]:
        yield first
        yield from items

    return rest()


@router.post("/ask", response_model=Answer, summary="Answer a question with verified citations")
def post_ask(body: AskRequest, state: StateDep, index: IndexDep, settings: SettingsDep,
             generator: GeneratorDep) -> Answer:
    return answer(state, index, settings, generator, body.question, body.history, body.top_k)
