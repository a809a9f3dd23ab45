"""Turn a generator's evidence into citations that are verified against the original text.

A citation is kept only when its passage number exists and its span lies inside that passage's
document, whose original text must be the one the offset map was made from; the quote is then
``original[start:end]`` by construction. Answer markers ``[n]`` without a kept citation are
removed, so every marker a user sees points at a true quote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer.draft import Evidence, Passage
from rag.schema import Citation

__all__ = ["MARKER", "cite", "original_chars", "strip_markers"]

MARKER = re.compile(r"\[(\d{1,3})\]")


def cite(evidence: Sequence[Evidence], passages: Sequence[Passage],
         texts: dict[str, str]) -> list[Citation]:
    """Verified citations for ``evidence``; ``texts`` maps doc_id → original text."""
    out: list[Citation] = []
    for ev in evidence:
        if not 1 <= ev.n <= len(passages):
            continue
        p = passages[ev.n - 1]
        chunk = p.hit.chunk
        if not 0 <= ev.nstart < ev.nend <= len(p.doc.text):
            continue
        start, end = p.doc.span(ev.nstart, ev.nend)
        original = texts[chunk.doc_id]
        quote = original[start:end]
        if not quote.strip() or p.doc.original_length != len(original):
            continue
        a, b = min(start, chunk.start), max(end, chunk.end)
        out.append(Citation(n=ev.n, doc_id=chunk.doc_id, chunk_id=chunk.chunk_id, quote=quote,
                            start=start, end=end, score=round(p.hit.score, 4),
                            passage=original[a:b], passage_start=a))
    return out


def strip_markers(text: str, keep: set[int]) -> str:
    """Remove ``[n]`` markers whose ``n`` is not in ``keep``."""
    return MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in keep else "", text)


def original_chars(p: Passage, ev: Evidence, original: str) -> str:
    """The original characters behind a normalized span, noise (pinyin, boilerplate) left out:
    the exact source wording, in the source's script."""
    return "".join(original[i] for i in p.doc.origin[ev.nstart:ev.nend])
