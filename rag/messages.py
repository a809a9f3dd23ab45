"""OpenAI-style ``messages`` → wenda's question and history, for both clients and the server.

    >>> split_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "a"}])
    ('a', [])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rag.errors import InputError
from rag.schema import Message

__all__ = ["HistoryLike", "history_dicts", "split_messages", "turns"]

HistoryLike = Sequence[Message | Mapping[str, Any]]


def _text(content: Any) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, Mapping) and p.get("type", "text") == "text")
    return ""


def turns(messages: HistoryLike | None) -> list[Message]:
    """User and assistant turns as ``Message``s (system, tool and other roles are dropped)."""
    found = []
    for m in messages or ():
        if isinstance(m, Message):
            found.append(m)
        elif m.get("role") in ("user", "assistant"):
            found.append(Message(role=m["role"], content=_text(m.get("content"))))
    return [m for m in found if m.role in ("user", "assistant")]


def history_dicts(history: HistoryLike | None) -> list[dict[str, Any]]:
    """The turns as JSON-ready ``{"role", "content"}`` dicts."""
    return [m.model_dump() for m in turns(history)]


def split_messages(messages: HistoryLike) -> tuple[str, list[Message]]:
    """An OpenAI ``messages`` list → ``(question, history)``: the last user message is the
    question; the user/assistant turns before it are the history (system turns are dropped).

    >>> split_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    ...                 {"role": "user", "content": "c"}])[0]
    'c'
    """
    found = turns(messages)
    last = max((i for i, m in enumerate(found) if m.role == "user"), default=None)
    if last is None:
        raise InputError("messages must contain a user message (the question)")
    return found[last].content, found[:last]
