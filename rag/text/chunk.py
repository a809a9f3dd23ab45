"""Split normalized text into sentences and pack them into overlapping ``Chunk``s.

Chunks are cut in normalized space (where sentence punctuation is reliable) and carry offsets
into both the normalized text (``nstart``/``nend``) and the ORIGINAL text (``start``/``end``,
through ``Normalized.span``), so a citation can quote the original exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text.normalize import Normalized

__all__ = ["Chunk", "chunk_document", "split_sentences"]

# A sentence ends after Chinese or English terminal punctuation (plus closing quotes/brackets),
# or at a newline. English periods count only before whitespace, so 3.14 and U.S. stay whole.
_END = re.compile(
    r"[。！？!?；;…]+[”’」』)\]】\"']*"
    r"|\.[”’\"')\]]*(?=\s)"
    r"|\n"
)
_SOFT = re.compile(r"[,，、:：]")


@dataclass(frozen=True)
class Chunk:
    doc_id: str
    ordinal: int
    text: str  # normalized search text
    start: int  # offsets into the original document text
    end: int
    nstart: int  # offsets into the normalized document text
    nend: int

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


def split_sentences(text: str, max_len: int = 10_000) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the sentences in ``text``; whitespace-only pieces dropped.

    Sentences longer than ``max_len`` are cut at commas, then hard.

    >>> split_sentences("你好。再见!")
    [(0, 3), (3, 6)]
    """
    spans: list[tuple[int, int]] = []
    at = 0
    for m in _END.finditer(text):
        spans.append((at, m.end()))
        at = m.end()
    spans.append((at, len(text)))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        while b - a > max_len:
            cut = max((m.end() for m in _SOFT.finditer(text, a, a + max_len)), default=a + max_len)
            out.append((a, cut))
            a = cut
        if b > a:
            out.append((a, b))
    return out


def chunk_document(doc_id: str, norm: Normalized, size: int = 240, overlap: int = 1) -> list[Chunk]:
    """Pack sentences into chunks of about ``size`` normalized characters; consecutive chunks
    share their last/first ``overlap`` sentences. Every sentence lands in at least one chunk."""
    sentences = split_sentences(norm.text, max_len=size)
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j = i + 1
        while j < len(sentences) and sentences[j][1] - sentences[i][0] <= size:
            j += 1
        a, b = sentences[i][0], sentences[j - 1][1]
        start, end = norm.span(a, b)
        chunks.append(Chunk(doc_id, len(chunks), norm.text[a:b], start, end, a, b))
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    return chunks
