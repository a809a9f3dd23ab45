"""The nouns that cross an edge: what ``ask`` returns, as fixed by DESIGN.md's Answer JSON.

Pydantic models, because the CLI (``--json``), the HTTP API and the client all serialize them.
Inside the library, data travels as frozen dataclasses (``Document``, ``Chunk``, ``Hit``).
"""

from __future__ import annotations

from html import escape
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["Answer", "Citation", "Message", "Passage"]


class Citation(BaseModel):
    """Passage ``n`` of the answer; ``quote == original_text[start:end]`` (verified, not trusted)."""

    n: int
    doc_id: str
    chunk_id: str
    quote: str
    start: int
    end: int
    score: float
    passage: str | None = Field(default=None, description="the whole cited passage (original text)")
    passage_start: int | None = Field(default=None, description="offset of `passage` in the document")
    page: int | None = Field(default=None, description="1-based page or slide of the quote's start;"
                             " null for formats without pages")
    location: str | None = Field(default=None, description="where the quote is, for people:"
                                 " 第 3 页, 第 2 张幻灯片, 销售 第 5 行")
    title: str | None = Field(default=None, description="the document's title, when it has one")
    tags: list[str] = Field(default_factory=list, description="the document's tags (rag ingest --tag)")
    flagged: str | None = Field(default=None, description="why the cited passage looks like a prompt"
                                " injection (rag.text.injection); its flagged sentences are never quoted")


class Passage(BaseModel):
    """A retrieved passage, in rank order."""

    doc_id: str
    chunk_id: str
    text: str
    score: float
    start: int = 0
    end: int = 0
    page: int | None = None
    location: str | None = None
    flagged: str | None = Field(default=None, description="why the passage looks like a prompt injection"
                                " (rag.text.injection): instruction-like text aimed at an AI")


class Message(BaseModel):
    """One turn of a conversation (OpenAI style)."""

    role: Literal["system", "user", "assistant"]
    content: str


class Answer(BaseModel):
    """What every entry point returns for a question."""

    question: str
    answer: str
    short_answer: str | None = None
    refused: bool = False
    citations: list[Citation] = []
    passages: list[Passage] = []
    timings_ms: dict[str, float] = {}
    generator: str = "extractive"
    standalone_question: str | None = None
    # LLM grounding: how many sentences the model wrote, the ones dropped because their cited
    # passage did not support them, and "extractive" when the extractive answer replaced it
    sentences: int | None = None
    unsupported_sentences: list[str] = []
    fallback: str | None = None

    def _repr_markdown_(self) -> str:
        lines = [self.answer, ""]
        if self.short_answer:
            lines += [f"**Short answer:** {self.short_answer}", ""]
        for c in self.citations:
            where = f" {c.location}" if c.location else ""
            lines.append(f"[{c.n}] `{c.doc_id}`{where} {c.start}–{c.end}: > {c.quote}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<div class='wenda-answer'><p>{escape(self.answer)}</p>"]
        if self.short_answer:
            parts.append(f"<p><b>Short answer:</b> {escape(self.short_answer)}</p>")
        for c in self.citations:
            body = escape(c.quote)
            if c.passage is not None and c.passage_start is not None:
                a, b = c.start - c.passage_start, c.end - c.passage_start
                if 0 <= a <= b <= len(c.passage):
                    body = (
                        escape(c.passage[:a])
                        + f"<mark>{escape(c.passage[a:b])}</mark>"
                        + escape(c.passage[b:])
                    )
            where = f" <b>{escape(c.location)}</b>" if c.location else ""
            parts.append(
                f"<p><b>[{c.n}]</b> <code>{escape(c.doc_id)}</code>{where} "
                f"<small>{c.start}–{c.end}</small><br>{body}</p>"
            )
        parts.append("</div>")
        return "".join(parts)
