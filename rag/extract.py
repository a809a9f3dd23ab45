"""The extractive generator: answer with the best supporting sentence(s), no LLM needed.

Sentences of the retrieved passages are scored by how much of the question's weight (IDF of its
tokens, matched as substrings so segmentation differences don't matter) they contain, plus a
small prior from the passage's retrieval rank. The best sentence is the answer; a second one
joins when it adds question terms the first lacks. ``short_answer`` fills the question's
wh-slot: the text between the question's words before and after 谁/哪/什么/多少… as they
appear in the chosen sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.chunk import split_sentences
from rag.generate import Draft, Evidence, Passage
from rag.lexical import coverage, longest_run

__all__ = ["Extractive", "Sentence", "rank_sentences", "short_span"]

RANK_PRIOR = 0.15  # weight of the passage's fused retrieval score in a sentence's score
RUN_BONUS = 0.4  # weight of the longest run of question text found verbatim in the sentence
LIST_BONUS = 0.05  # per enumeration comma (、), for questions that ask for several things
# A sentence that opens by pointing back ("该中心…", "此次这五家新区…") is quoted with the one
# before it, which says what it points at.
_POINTS_BACK = re.compile(r"^(?:该|此|这|其|上述|他|她|它|双方|两地)")
_LIST_Q = re.compile(r"哪些|哪几|哪[一二三四五六七八九十两]|[一二三四五六七八九十两]个|分别")

# Wh-words, longest first; the question's text around one of them frames the answer.
_WH = sorted(
    "哪一年 哪一天 什么时候 什么地方 哪些 哪个 哪位 哪家 哪里 哪儿 哪年 哪天 "
    "哪国 哪座 哪种 哪项 哪次 哪 什么 多少 几 谁 何时 何地 何处 何人 何种 何 "
    "多久 多长 多大 多高 多远 怎样 怎么 如何 为何 为什么".split(),
    key=len, reverse=True,
)
_LIST_WH = ("哪些",)
_STOP_AT = re.compile(r"[,。;!?:“”\"()《》\n]|,")
_OPENS_SLOT = re.compile(r"[,。;!?:“”\"()《》\n、]|在|于|由|是|为")
_EDGE = "的了是为在和与及等,、:;.。 "


@dataclass(frozen=True)
class Sentence:
    n: int  # passage number
    nstart: int  # offsets in the document's normalized text
    nend: int
    text: str
    score: float
    coverage: float


def rank_sentences(passages: Sequence[Passage], weights: dict[str, float],
                   question: str = "") -> list[Sentence]:
    wants_list = bool(_LIST_Q.search(question))
    core = question.rstrip("?？。!！ ")
    out = []
    for p in passages:
        base = p.hit.chunk.nstart
        for a, b in split_sentences(p.text):
            text = p.text[a:b]
            if len(text) < 4:
                continue
            cov = coverage(text, weights)
            score = cov + RANK_PRIOR * p.hit.score
            if core:
                score += RUN_BONUS * longest_run(core, text) / len(core)
            if wants_list:
                score += LIST_BONUS * min(text.count("、"), 6)
            out.append(Sentence(p.n, base + a, base + b, text, score, cov))
    out.sort(key=lambda s: -s.score)
    return out


def _previous(sentence: Sentence, passages: Sequence[Passage]) -> Sentence | None:
    """The sentence just before ``sentence`` in its document, if it points back to it."""
    if not _POINTS_BACK.match(sentence.text):
        return None
    doc = passages[sentence.n - 1].doc.text
    spans = split_sentences(doc[max(0, sentence.nstart - 400):sentence.nstart])
    if not spans:
        return None
    a, b = spans[-1]
    offset = max(0, sentence.nstart - 400)
    return Sentence(sentence.n, offset + a, offset + b, doc[offset + a:offset + b], 0.0, 0.0)


def _split_question(question: str) -> tuple[str, str, str] | None:
    q = question.strip().rstrip("?？。!！ ")
    for wh in _WH:
        at = q.find(wh)
        if at >= 0:
            return q[:at], wh, q[at + len(wh):]
    return None


def _longest_suffix_in(frag: str, text: str, min_len: int = 2) -> tuple[int, int] | None:
    """End offset in ``text`` of the longest suffix of ``frag`` found there, and its length."""
    for size in range(min(len(frag), 30), min_len - 1, -1):
        at = text.find(frag[-size:])
        if at >= 0:
            return at + size, size
    return None


def _longest_prefix_in(frag: str, text: str, start: int, min_len: int = 2) -> int | None:
    for size in range(min(len(frag), 30), min_len - 1, -1):
        at = text.find(frag[:size], start)
        if at >= 0:
            return at
    return None


def short_span(question: str, sentence: str) -> tuple[int, int] | None:
    """``[a, b)`` in ``sentence`` answering a factoid ``question``; None for lists/explanations.

    >>> short_span("咸阳市委书记是谁?", "咸阳市委书记夏晓中,西咸新区党工委书记杨仁华")
    (6, 9)
    """
    parts = _split_question(question)
    if parts is None or parts[1] in _LIST_WH or parts[1] in ("如何", "为何", "为什么", "怎么", "怎样"):
        return None
    left, _, right = parts
    left = left.rstrip("是在于为有")
    right = right.lstrip("是个位的")
    a = b = None
    found = _longest_suffix_in(left, sentence) if left else None
    end = _longest_prefix_in(right, sentence, 0) if right else None
    if found and (end is None or end > found[0]):
        a = found[0]
        stop = _STOP_AT.search(sentence, a)
        b = end if end is not None else (stop.start() if stop else len(sentence))
    elif end is not None:
        # the slot sits right before the question's closing words ("在福州新区召开"): go back
        # to a preposition or punctuation
        b = end
        starts = [m.end() for m in _OPENS_SLOT.finditer(sentence, 0, b)]
        a = starts[-1] if starts else 0
    if a is None or b is None:
        return None
    while a < b and sentence[a] in _EDGE:
        a += 1
    while b > a and sentence[b - 1] in _EDGE:
        b -= 1
    return (a, b) if 0 < b - a <= 40 else None


class Extractive:
    """Answers by quoting; see the module docstring."""

    name = "extractive"

    def generate(self, question: str, passages: Sequence[Passage], *,
                 idf: dict[str, float]) -> Draft:
        ranked = rank_sentences(passages, idf, question)
        if not ranked:
            return Draft("", refused=True)
        best = ranked[0]
        before = _previous(best, passages)
        chosen = [before, best] if before else [best]
        missing = {t: w for t, w in idf.items() if t not in best.text}
        if missing and best.coverage < 0.999:
            extra = max(ranked[1:6], key=lambda s: coverage(s.text, missing), default=None)
            if extra and coverage(extra.text, missing) > 0.3 and all(
                    extra.text not in s.text for s in chosen):
                chosen.append(extra)
        text = "".join(f"{s.text}[{s.n}]" for s in chosen)
        evidence = [Evidence(s.n, s.nstart, s.nend) for s in chosen]
        short = None
        if span := short_span(question, best.text):
            short = Evidence(best.n, best.nstart + span[0], best.nstart + span[1])
        return Draft(text, evidence, short, quoted=True)

    def stream(self, question: str, passages: Sequence[Passage], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        yield self.generate(question, passages, idf=idf)  # quoted: qa renders the pieces
