"""The answer stage's nouns: what a generator reads (``Passage``), what it leans on (``Evidence``),
what it returns (``Draft``), and the seam itself (``Generator``).

They live apart from ``generate`` (which picks a backend) so that the backends (``extract``,
``llm``, ``grounding``) and ``cite`` import them without importing each other: with the types in
``generate.py``, extract → generate → llm → grounding → generate was a circle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.answer.retrieve import Hit
from rag.text.normalize import Normalized

__all__ = ["Draft", "Evidence", "Generator", "Passage"]


@dataclass(frozen=True)
class Passage:
    """Passage ``n`` as a generator sees it: the hit, and its document's normalized text;
    ``found``: the span in it the reader (``rag.answer.reading``) found answers the question,
    offered to an LLM's prompt ("" when none)."""

    n: int
    hit: Hit
    doc: Normalized
    found: str = ""

    @property
    def text(self) -> str:
        return self.hit.chunk.text


@dataclass(frozen=True)
class Evidence:
    """The answer leans on normalized ``[nstart, nend)`` of passage ``n``'s document."""

    n: int
    nstart: int
    nend: int


@dataclass
class Draft:
    text: str  # with [n] markers; Simplified (qa converts to the asker's script)
    evidence: list[Evidence] = field(default_factory=list)
    short_answer: Evidence | None = None
    refused: bool = False
    quoted: bool = False  # text is exactly the evidence sentences, each followed by its [n]
    notes: list[str] = field(default_factory=list)
    # LLM grounding (rag.answer.grounding): sentences the model wrote, those dropped as unsupported,
    # and "extractive" when nothing held up and the extractive answer was used instead
    sentences: int | None = None
    unsupported: list[str] = field(default_factory=list)
    fallback: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # e.g. first_token (ms from call)


class Generator(Protocol):
    name: str

    def generate(self, question: str, passages: Sequence[Passage], *, idf: dict[str, float]) -> Draft:
        """``question`` is normalized; ``idf`` weighs its tokens (rare words matter more)."""
        ...

    def stream(self, question: str, passages: Sequence[Passage], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        """Text deltas, then the final ``Draft``."""
        ...
