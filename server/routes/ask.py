"""``POST /ask``: one question (with optional history, a collection and a filter) → the Answer
JSON of DESIGN.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from rag.answer.generate import Generator
from rag.bootstrap import make_judge
from rag.config import Settings
from rag.errors import IndexStateError, InputError, NotFoundError
from rag.qa import ask, stream_ask
from rag.schema import Answer, Message
from rag.store.backend import SearchBackend
from rag.store.collections import DEFAULT
from rag.store.filters import Filter
from server.deps import Collection, CollectionsDep, GeneratorDep, SettingsDep
from server.errors import ApiError

__all__ = ["AskRequest", "FilterSpec", "answer", "answer_stream", "router"]

router = APIRouter(tags=["ask"])
T = TypeVar("T")


class FilterSpec(BaseModel):
    """Which documents the answer may draw on (``rag.store.filters.Filter``); every field optional."""

    model_config = ConfigDict(extra="forbid")
    doc_ids: list[str] = Field(default=[], description="only these documents")
    path_prefix: str = Field(default="", description="doc_id or source path starts with it")
    tags_any: list[str] = Field(default=[], description="documents with at least one of these tags")
    tags_all: list[str] = Field(default=[], description="documents with every one of these tags")

    def parsed(self) -> Filter:
        return Filter.parse(self.model_dump())


class AskRequest(BaseModel):
    question: str = Field(description="the question, in Simplified or Traditional Chinese or English")
    history: list[Message] = Field(default=[], description="earlier turns, oldest first")
    top_k: int | None = Field(default=None, description="passages to retrieve (default from settings)")
    collection: str = Field(default=DEFAULT, description="the collection to ask (GET /collections)")
    filter: FilterSpec | None = Field(default=None, description="limit the documents the answer draws on")


def _kwargs(settings: Settings, generator: Generator | None, top_k: int | None,
            history: Sequence[Message], where: FilterSpec | None) -> dict[str, Any]:
    k = settings.top_k if top_k is None else top_k
    if not 1 <= k <= settings.max_top_k:
        raise InputError(f"top_k must be between 1 and {settings.max_top_k}, not {k}")
    return {"top_k": k, "generator": generator, "max_question_chars": settings.max_question_chars,
            "refuse_below": settings.refuse_below, "history": checked_history(settings, history),
            "where": where.parsed() if where is not None else None,
            "reader": make_judge(settings)}  # the model is loaded once (rag.answer.reading)


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


def _settled(collection: Collection, call: Callable[[SearchBackend], T]) -> T:
    """``call`` on a snapshot of the collection, once more on a current one if a write removed
    or changed a document under it.

    A snapshot reads document texts from the docstore lazily (checked against the state it
    loaded), so a write that commits between retrieval and quoting surfaces as ``NotFoundError``;
    ``ask`` names no documents itself, so that error always means the index changed.
    """
    try:
        return call(collection.snapshot())
    except NotFoundError:
        pass
    try:
        return call(collection.current())
    except NotFoundError as exc:
        # retryable, unlike the other 503s: the next attempt reads the new state
        raise ApiError(503, IndexStateError.code, "the index changed while answering; please ask again",
                       {"Retry-After": "1"}) from exc


def answer(collection: Collection, settings: Settings, generator: Generator | None, question: str,
           history: Sequence[Message] = (), top_k: int | None = None,
           where: FilterSpec | None = None) -> Answer:
    """``rag.qa.ask`` on ``collection`` with the server's settings."""
    kwargs = _kwargs(settings, generator, top_k, history, where)
    return _settled(collection, lambda ix: ask(ix, question, **kwargs))


def answer_stream(collection: Collection, settings: Settings, generator: Generator | None,
                  question: str, history: Sequence[Message] = (), top_k: int | None = None,
                  where: FilterSpec | None = None) -> Iterator[str | Answer]:
    """``rag.qa.stream_ask``, primed: bad input raises here, before any byte is sent (and so
    does retrieval, which reads every document text the answer will quote)."""
    kwargs = _kwargs(settings, generator, top_k, history, where)

    def start(ix: SearchBackend) -> tuple[str | Answer, Iterator[str | Answer]]:
        items = stream_ask(ix, question, **kwargs)
        return next(items), items

    first, items = _settled(collection, start)

    def rest() -> Iterator[str | Answer]:
        yield first
        yield from items

    return rest()


@router.post("/ask", response_model=Answer, summary="Answer a question with verified citations")
def post_ask(body: AskRequest, collections: CollectionsDep, settings: SettingsDep,
             generator: GeneratorDep) -> Answer:
    collection = collections.get(body.collection)
    return answer(collection, settings, generator, body.question, body.history, body.top_k, body.filter)
