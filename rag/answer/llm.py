"""LLM generators behind the ``Generator`` seam: ``LocalLLM`` (llama.cpp, a bundled GGUF) and
``OpenAILLM`` (any OpenAI-compatible server, through llama-index's ``OpenAILike``).

Both share ``LLMGenerator``: the passages go into ``prompts/answer.LANG.md`` numbered and fenced
(``prompts/passage.LANG.md``; a passage cannot close its fence), the reply streams through
``rag.answer.grounding.Grounder``, which passes on only sentences its cited passage supports, and the
last item is the ``Draft``. ``rewrite`` turns a follow-up into a standalone question
(``prompts/condense.LANG.md``). A prompt file's parts are separated by lines that are
exactly ``---``: the system message, worked examples as user/assistant turns, the user's turn.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.answer.draft import Draft, Passage
from rag.answer.extract import Extractive
from rag.answer.grounding import Grounder
from rag.answer.prompts import language_of, render
from rag.errors import ModelError
from rag.schema import Message
from rag.text.injection import strip_flagged
from rag.text.normalize import to_simplified, to_traditional

__all__ = ["LLMGenerator", "LocalLLM", "OpenAILLM", "format_passages", "split_roles"]

log = logging.getLogger("wenda.llm")
_FENCE = re.compile(r"<(\s*/?\s*(?:资料|資料|passage))", re.I)
_SPEAKERS = {"zh-Hans": {"user": "用户", "assistant": "助手"},
             "en": {"user": "User", "assistant": "Assistant"}}
_REWRITE_LABEL = re.compile(r"^(?:改写后的问题|问题|rewritten question|question)\s*[:：]\s*", re.I)


def split_roles(prompt: str) -> list[dict[str, str]]:
    """Chat messages from a rendered prompt whose parts are separated by ``---`` lines: the
    first part is the system message, then user and assistant turns alternate (worked
    examples), and the last part is the user's turn.

    >>> [m["role"] for m in split_roles("rules\\n---\\nexample q\\n---\\nexample a\\n---\\nq")]
    ['system', 'user', 'assistant', 'user']
    """
    parts = [p.strip() for p in re.split(r"\n---\n", prompt)]
    if len(parts) == 1:
        return [{"role": "user", "content": parts[0]}]
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": p} for i, p in enumerate(parts[1:])]
    return [{"role": "system", "content": parts[0]}, *turns]


def format_passages(passages: Sequence[Passage], lang: str) -> str:
    """The numbered, fenced passages; text that looks like a fence tag is defused, and sentences
    that look like instructions to the model (``rag.text.injection``) are left out. After them,
    the span the reader found (``Passage.found``), unless it lies in such a sentence."""
    fenced = [render("passage", lang, n=str(p.n), text=_FENCE.sub(r"＜\1", strip_flagged(p.text)))
              for p in passages]
    hints = [render("hint", lang, n=str(p.n), span=_FENCE.sub(r"＜\1", p.found))
             for p in passages if p.found and p.found in strip_flagged(p.text)]
    return "\n".join(fenced) + "".join(f"\n\n{h}" for h in hints[:1])


def _fit(passages: Sequence[Passage], max_chars: int) -> list[Passage]:
    """The leading passages that fit in ``max_chars`` (at least one): the prompt must fit."""
    out: list[Passage] = []
    used = 0
    for p in passages:
        if out and used + len(p.text) > max_chars:
            break
        out.append(p)
        used += len(p.text)
    return out


class LLMGenerator:
    """Prompting, grounding and timing; subclasses provide ``_chat`` (a stream of text deltas)."""

    name = "llm"

    def __init__(self, *, max_tokens: int = 384, max_passage_chars: int = 3000) -> None:
        self.max_tokens = max_tokens
        self.max_passage_chars = max_passage_chars

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        raise NotImplementedError

    def messages(self, question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
        lang = language_of(question)
        return split_roles(render("answer", lang, question=question,
                                  passages=format_passages(passages, lang)))

    def stream(self, question: str, passages: Sequence[Passage], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        """Verified answer pieces as the model writes them, then the ``Draft``."""
        t0 = time.perf_counter()
        shown = _fit(passages, self.max_passage_chars)
        grounder = Grounder(question, shown,
                            fallback=lambda: Extractive().generate(question, passages, idf=idf))
        first: float | None = None
        for delta in self._chat(self.messages(question, shown), self.max_tokens):
            if first is None and delta:
                first = (time.perf_counter() - t0) * 1000
            yield from grounder.feed(delta)
        draft = grounder.finish()
        draft.timings["first_token"] = first if first is not None else (time.perf_counter() - t0) * 1000
        yield draft

    def generate(self, question: str, passages: Sequence[Passage], *,
                 idf: dict[str, float]) -> Draft:
        for item in self.stream(question, passages, idf=idf):
            if isinstance(item, Draft):
                return item
        raise ModelError(f"{self.name}: the stream ended without a draft")

    def rewrite(self, question: str, history: Sequence[Message]) -> str | None:
        """``question`` as a standalone question given ``history`` (in the asker's script), or
        None when the model's reply does not look like one question."""
        asker = language_of(question)
        lang = "en" if asker == "en" else "zh-Hans"
        who = _SPEAKERS[lang]
        turns = [m for m in history if m.role in who and m.content.strip()][-6:]
        log_text = "\n".join(f"{who[m.role]}：{to_simplified(m.content.strip())[:300]}" for m in turns)
        prompt = render("condense", lang, history=log_text, question=to_simplified(question))
        reply = "".join(self._chat(split_roles(prompt), 96)).strip()
        line = next((x.strip() for x in reply.splitlines() if x.strip()), "")
        line = _REWRITE_LABEL.sub("", line).strip(" \"“”'‘’「」")
        if not line or len(line) > 3 * len(question) + 80 or line.startswith(("用户", "助手", "User")):
            return None
        return to_traditional(line) if asker == "zh-Hant" else line


class LocalLLM(LLMGenerator):
    """A GGUF model run in-process by llama.cpp (``llama-cpp-python``). One generation at a
    time: a lock serializes callers (a ``Llama`` object is not thread-safe)."""

    def __init__(self, model: str = "qwen-0.5b", *, cache_dir: Path | None = None,
                 threads: int | None = None, n_ctx: int = 4096, max_tokens: int = 384,
                 max_passage_chars: int = 3000) -> None:
        super().__init__(max_tokens=max_tokens, max_passage_chars=max_passage_chars)
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            from rag.answer.generate import LLM_EXTRA

            raise ModelError(LLM_EXTRA) from exc
        from rag.models.gguf import MODELS, model_path

        path = model_path(model, cache_dir, on_assemble=lambda spec, target: log.warning(
            "assembling %s into %s (once)", spec.name, target))
        self.name = f"local:{model if model in MODELS else path.name}"
        self.path = path
        self._lock = threading.Lock()
        try:
            self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads or os.cpu_count() or 2,
                              n_batch=512, verbose=False)
        except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        with self._lock:
            chunks: Any = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens, temperature=0.0, stream=True)
            for chunk in chunks:
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    yield delta


class OpenAILLM(LLMGenerator):
    """Any OpenAI-compatible chat server (DeepSeek, Qwen, vLLM, Ollama, llama.cpp server, …)
    through llama-index's ``OpenAILike``."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 max_tokens: int = 384, max_passage_chars: int = 6000, timeout: float = 120.0) -> None:
        super().__init__(max_tokens=max_tokens, max_passage_chars=max_passage_chars)
        from llama_index.llms.openai_like import OpenAILike

        self.name = f"openai:{model}"
        self._llm = OpenAILike(model=model, api_base=base_url, api_key=api_key or "none",
                               is_chat_model=True, temperature=0.0, timeout=timeout, max_retries=1,
                               context_window=32768)

    def _chat(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        import openai
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        try:
            for response in self._llm.stream_chat(chat, max_tokens=max_tokens):
                if response.delta:
                    yield response.delta
        except openai.OpenAIError as exc:
            raise ModelError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
