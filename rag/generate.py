"""The generator seam: turn numbered passages into a ``Draft`` answer with ``[n]`` markers.

A generator never sees files or offsets it could get wrong: it receives ``Passage``s numbered
from 1 and returns text plus ``Evidence`` (which passage, which normalized span). ``rag.cite``
turns evidence into verified citations; ``rag.qa`` is the only caller.

Backends: ``extractive`` (always available, ``rag.extract``). LLM backends plug in here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.normalize import Normalized
from rag.retrieve import Hit

__all__ = ["Draft", "Evidence", "Generator", "Passage", "load_generator"]


@dataclass(frozen=True)
class Passage:
    """Passage ``n`` as a generator sees it: the hit, and its document's normalized text."""

    n: int
    hit: Hit
    doc: Normalized

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


class Generator(Protocol):
    name: str

    def generate(self, question: str, passages: Sequence[Passage], *, idf: dict[str, float]) -> Draft:
        """``question`` is normalized; ``idf`` weighs its tokens (rare words matter more)."""
        ...

    def stream(self, question: str, passages: Sequence[Passage], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        """Text deltas, then the final ``Draft``."""
        ...


def load_generator(name: str) -> Generator:
    """``extractive`` (and ``auto``, which picks the best installed backend)."""
    from rag.errors import InputError
    from rag.extract import Extractive

    if name in ("auto", "extractive"):
        return Extractive()
    raise InputError(f"unknown generator {name!r}; available: extractive")
