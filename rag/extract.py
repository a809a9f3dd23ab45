"""The extractive generator: answer with the best supporting sentence(s), no LLM needed.

Sentences of the retrieved passages are scored by how much of the question's weight (IDF of its
tokens, matched as substrings so segmentation differences don't matter) they contain, plus a
small prior from the passage's retrieval rank. The best sentence is the answer; a second one
joins when it adds question terms the first lacks. ``short_answer`` is the best candidate
span of the chosen sentence (``rag.span``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.chunk import split_sentences
from rag.generate import Draft, Evidence, Passage
from rag.lexical import ALTERNATIVE, coverage, longest_run, occurs
from rag.span import short_span

__all__ = ["ANSWER_TYPES", "Extractive", "Sentence", "rank_sentences"]

RANK_PRIOR = 0.15  # weight of the passage's fused retrieval score in a sentence's score
RUN_BONUS = 0.4  # weight of the longest run of question text found verbatim in the sentence
LIST_BONUS = 0.05  # per enumeration comma (、), for questions that ask for several things
# A sentence that opens by pointing back ("该中心…", "双方将在…") is quoted together with the
# sentence before it, which says what it points at.
_POINTS_BACK = re.compile(r"^(?:该|此|这|其|上述|他|她|它|双方|两地)")
_LIST_Q = re.compile(r"哪些|哪几|哪[一二三四五六七八九十两]|[一二三四五六七八九十两]个|分别")
TYPE_BONUS = 0.3  # for holding the kind of value the question asks for (a year, a date, a share)
# Questions that ask for a kind of value the answer sentence must contain.
ANSWER_TYPES = (
    (re.compile(r"哪一?年|何年|什么年份|which year|what year"), re.compile(r"\d{2,4}\s*年|[一二〇零○]{4}年")),
    (re.compile(r"百分之|百分比|percent|%"), re.compile(r"%|百分之")),
    (re.compile(r"何时|什么时候|哪天|哪一天|哪几天|日期|when|what date"),
     re.compile(r"\d{1,4}\s*[年月日号]|[一二三四五六七八九十]+[月日]|上午|下午|今年|去年")),
)

# "What position does X hold?": prefer the sentence that puts a title right before the name.
ROLE_BONUS = 0.3
_ASKS_ROLE = re.compile(r"职务|职位|担任|身份|头衔|什么官")
_TITLE = re.compile(r"(?:书记|主任|委员|局长|部长|市长|省长|主席|总理|院长|校长|经理|董事长|总裁|"
                    r"秘书长|厅长|司长|区长|县长|镇长|理事长|会长|主编|总监|司令|大使)$")


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
    wants = [needs for asks, needs in ANSWER_TYPES if asks.search(question.lower())]
    names = [t for t in weights if len(t) >= 2] if _ASKS_ROLE.search(question) else []
    core = question.rstrip("?？。!！ ")
    # an English question bridged to Chinese alternatives (rag.crosslingual) has no verbatim
    # run; the longest stretch of matched alternatives plays its part
    bridged = (sum(max(map(len, k.split(ALTERNATIVE))) for k in weights)
               if any(ALTERNATIVE in k for k in weights) else 0)
    out = []
    for p in passages:
        base = p.hit.chunk.nstart
        for a, b in split_sentences(p.text):
            text = p.text[a:b]
            if len(text) < 4:
                continue
            cov = coverage(text, weights)
            score = cov + RANK_PRIOR * p.hit.score
            if bridged:
                score += RUN_BONUS * _matched_run(text, weights) / bridged
            elif core:
                score += RUN_BONUS * longest_run(core, text) / len(core)
            if any(needs.search(text) for needs in wants):
                score += TYPE_BONUS
            if wants_list:
                score += LIST_BONUS * min(text.count("、"), 6)
            if any(_TITLE.search(text[:at]) for name in names if (at := text.find(name)) > 0):
                score += ROLE_BONUS
            out.append(Sentence(p.n, base + a, base + b, text, score, cov))
    out.sort(key=lambda s: -s.score)
    return out


def _matched_run(text: str, weights: dict[str, float]) -> int:
    """Length of the longest stretch of ``text`` covered by occurrences of weighted words."""
    covered = [False] * len(text)
    for key in weights:
        for word in key.split(ALTERNATIVE):
            at = text.find(word)
            while at >= 0:
                covered[at:at + len(word)] = [True] * len(word)
                at = text.find(word, at + 1)
    best = run = 0
    for c in covered:
        run = run + 1 if c else 0
        best = max(best, run)
    return best


def _neighbour(sentence: Sentence, passages: Sequence[Passage], step: int) -> Sentence | None:
    """The sentence before (``step=-1``) or after (``step=1``) ``sentence`` in its document."""
    doc = passages[sentence.n - 1].doc.text
    lo = max(0, sentence.nstart - 400) if step < 0 else sentence.nend
    spans = split_sentences(doc[lo:sentence.nstart] if step < 0 else doc[lo:lo + 400])
    if not spans:
        return None
    a, b = spans[-1] if step < 0 else spans[0]
    return Sentence(sentence.n, lo + a, lo + b, doc[lo + a:lo + b], 0.0, 0.0)


def _with_context(best: Sentence, passages: Sequence[Passage]) -> list[Sentence]:
    """``best``, with the sentence it points back to, or the (up to two) next ones that point
    back to it."""
    if _POINTS_BACK.match(best.text):
        before = _neighbour(best, passages, -1)
        return [before, best] if before else [best]
    chosen = [best]
    while len(chosen) < 3 and (after := _neighbour(chosen[-1], passages, 1)) and _POINTS_BACK.match(
            after.text):
        chosen.append(after)
    return chosen


class Extractive:
    """Answers by quoting; see the module docstring."""

    name = "extractive"

    def generate(self, question: str, passages: Sequence[Passage], *,
                 idf: dict[str, float]) -> Draft:
        ranked = rank_sentences(passages, idf, question)
        if not ranked:
            return Draft("", refused=True)
        best = ranked[0]
        chosen = _with_context(best, passages)
        missing = {t: w for t, w in idf.items() if not occurs(t, best.text)}
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
