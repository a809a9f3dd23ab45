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
from server.errors import ApiError

__all__ = ["AskRequest", "answer", "answer_stream", "router"]

router = APIRouter(tags=["ask"])
T = TypeVar("T")


class AskRequest(BaseModel):
    question: str = Field(description="the question, in Simplified or Traditional Chinese or English")
    history: list[Message] = Field(default=[], description="earlier turns, oldest first")
    top_k: int | None = Field(default=None, description="passages to retrieve (default from settings)")


def _kwargs(settings: Settings, generator: Generator | None, top_k: int | None,
            history: Sequence[Message]) -> dict[str, Any]:
    k = settings.top_k if top_k is None else top_k
    if not 1 <= k <= settings.max_top_k:
        raise InputError(f"top_k must be between 1 and {settings.max_top_k}, not {k}")
    return {"top_k": k, "generator": generator, "max_question_chars": settings.max_question_chars,
            "refuse_below": settings.refuse_below, "history": checked_history(settings, history)}


def checked_history(settings: Settings, history: Sequence[Message]) -> list[Message]:
    """History bounded like the question (turns, characters in all), lone surrogates replaced:
    ``"\\ud800"`` in JSON is a str Python cannot encode, and it reached the answer's
    ``standalone_question`` and failed the response (500, or a stream cut before ``[DONE]``)."""
    if len(history) > settings.max_history_turns:
        raise InputError(f"the history has {len(history)} turns; the limit is {settings.max_history_turns}")
    chars = sum(len(m.content) for m in history)
    if chars > settings.max_history_chars:
        raise InputError(f"the history has {chars} characters; the limit is {settings.max_history_chars}")
    return [m.model_copy(update={"content": _no_surrogates(m.content)}) for m in history]


def _no_surrogates(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


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
        # retryable, unlike the other 503s: the next attempt reads the new state
        raise ApiError(503, IndexStateError.code, "the index changed while answering; please ask again",
                       {"Retry-After": "1"}) from exc


def answer(state: State, index: Index, settings: Settings, generator: Generator | None,
           question: str, history: Sequence[Message] = (), top_k: int | None = None) -> Answer:
    """``rag.qa.ask`` with the server's settings."""
    kwargs = _kwargs(settings, generator, top_k, history)
    return _settled(state, index, lambda ix: ask(ix, question, **kwargs))


def answer_stream(state: State, index: Index, settings: Settings, generator: Generator | None,
                  question: str, history: Sequence[Message] = (), top_k: int | None = None,
                  ) -> Iterator[str | Answer]:
    """``rag.qa.stream_ask``, primed: bad input raises here, before any byte is sent (and so
    does retrieval, which reads every document text the answer will quote)."""
    kwargs = _kwargs(settings, generator, top_k, history)

    def start(ix: Index) -> tuple[str | Answer, Iterator[str | Answer]]:
        items = stream_ask(ix, question, **kwargs)
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
