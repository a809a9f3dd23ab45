"""The extractive generator: answer with the best supporting sentence(s), no LLM needed.

Sentences of the retrieved passages are scored by how much of the question's weight (IDF of its
tokens, matched as substrings so segmentation differences don't matter) they contain, plus a
small prior from the passage's retrieval rank. The best sentence is the answer; a second one
joins when it adds question terms the first lacks. ``short_answer`` is the best candidate
span of the chosen sentence (``rag.answer.span``).

Never chosen, as the answer or as context: a sentence ``rag.text.injection`` flags (a document's
instructions to an AI), and a question (a sentence ending in "?" states nothing; a poisoned
document may copy the asker's question to be retrieved and quoted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.answer.draft import Draft, Evidence, Passage
from rag.answer.span import short_span
from rag.text.chunk import split_sentences
from rag.text.injection import flag, flag_sentences
from rag.text.lexical import ALTERNATIVE, Weights, coverage, longest_run, occurs

__all__ = ["ANSWER_TYPES", "Extractive", "Sentence", "from_span", "lead", "rank_sentences", "split_question"]

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

# "怎样的重要指示?": prefer the sentence that says which one, the asked noun right after its
# modifier (“……”的重要指示), over one that merely mentions it (重要讲话重要指示精神).
FILLED_BONUS = 0.2
_MODIFIER_END = "的”」』》"
_CLOSERS = "”’」』)）\"' "


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
    slot = [a for key in getattr(weights, "slot", ()) for a in key.split(ALTERNATIVE)]
    core = question.rstrip("?？。!！ ")
    # an English question bridged to Chinese alternatives (rag.text.crosslingual) has no verbatim
    # run; the longest stretch of matched alternatives plays its part
    bridged = (sum(max(map(len, k.split(ALTERNATIVE))) for k in weights)
               if any(ALTERNATIVE in k for k in weights) else 0)
    out = []
    for p in passages:
        base = p.hit.chunk.nstart
        flagged = {(a, b) for a, b, _ in flag_sentences(p.text)}
        for a, b in split_sentences(p.text):
            text = p.text[a:b]
            if len(text) < 4 or (a, b) in flagged or _asks(text):
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
            if any(_filled(text, word) for word in slot):
                score += FILLED_BONUS
            out.append(Sentence(p.n, base + a, base + b, text, score, cov))
    out.sort(key=lambda s: -s.score)
    return out


def _asks(sentence: str) -> bool:
    return sentence.rstrip(_CLOSERS).endswith(("?", "？"))


def _quotable(sentence: Sentence | None) -> Sentence | None:
    """``sentence``, unless it may not be quoted (flagged, or a question)."""
    if sentence is None or _asks(sentence.text) or flag(sentence.text, normalized=True):
        return None
    return sentence


def _filled(text: str, word: str) -> bool:
    """Does ``word`` occur in ``text`` right after a modifier's end (的, a closing quote)?"""
    return re.search(f"[{_MODIFIER_END}]{re.escape(word)}", text) is not None


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
        before = _quotable(_neighbour(best, passages, -1))
        return [before, best] if before else [best]
    chosen = [best]
    while (len(chosen) < 3 and (after := _quotable(_neighbour(chosen[-1], passages, 1)))
           and _POINTS_BACK.match(after.text)):
        chosen.append(after)
    return chosen


def _draft(chosen: Sequence[Sentence], question: str, best: Sentence) -> Draft:
    """The chosen sentences, quoted and cited; the short answer is a span of ``best``."""
    text = "".join(f"{s.text}[{s.n}]" for s in chosen)
    evidence = [Evidence(s.n, s.nstart, s.nend) for s in chosen]
    short = None
    if span := short_span(question, best.text):
        short = Evidence(best.n, best.nstart + span[0], best.nstart + span[1])
    return Draft(text, evidence, short, quoted=True)


# "A和B分别是谁?" asks for two things at once; each part gets its own best sentence.
_RESPECTIVELY = re.compile(r"^(.*?)([^,，；;]+)分别(.+)$")
_AND = re.compile(r"和|与|以及|及|、")


def split_question(question: str) -> list[str]:
    """The parts of a question that asks for several things at once, or the question itself.

    >>> split_question("两篇报道中,党工委书记和管委会副主任分别是谁?")
    ['两篇报道中,党工委书记是谁?', '两篇报道中,管委会副主任是谁?']
    >>> split_question("北京和上海的人口分别是多少?")  # 的人口 belongs to both
    ['北京的人口是多少?', '上海的人口是多少?']
    """
    m = _RESPECTIVELY.match(question)
    if not m:
        return [question]
    lead, subject, asked = m.groups()
    items = [i for i in _AND.split(subject) if len(i) >= 2]
    if len(items) < 2:
        return [question]
    shared = items[-1][items[-1].rfind("的"):] if "的" in items[-1] else ""
    return [f"{lead}{item if '的' in item else item + shared}{asked}" for item in items]


def from_span(passages: Sequence[Passage], short: Evidence) -> Draft | None:
    """The answer a reader found (``rag.answer.reading``): the sentence holding the span ``short`` leads,
    with the context it points back to, and ``short`` is the short answer. None when that
    sentence may not be quoted (flagged, or a question)."""
    p = passages[short.n - 1]
    base = p.hit.chunk.nstart
    for a, b in split_sentences(p.text):
        if base + a <= short.nstart < base + b:
            found = _quotable(Sentence(p.n, base + a, base + b, p.text[a:b], 0.0, 0.0))
            if found is None:
                return None
            chosen = _with_context(found, passages)
            return Draft("".join(f"{s.text}[{s.n}]" for s in chosen),
                         [Evidence(s.n, s.nstart, s.nend) for s in chosen], short, quoted=True)
    return None


def lead(first: Draft, then: Draft, passages: Sequence[Passage]) -> Draft:
    """``first`` (the reader's sentence, ``from_span``) leads, then the sentences of ``then`` (the
    extractive answer) that it does not already quote; ``first``'s short answer stays."""
    def doc(e: Evidence) -> str:
        return passages[e.n - 1].hit.chunk.doc_id

    def quoted(e: Evidence) -> bool:  # overlapping chunks hold one sentence under two numbers
        return any(doc(q) == doc(e) and q.nstart < e.nend and e.nstart < q.nend for q in first.evidence)

    evidence = [*first.evidence, *(e for e in then.evidence if not quoted(e))]
    text = "".join(f"{passages[e.n - 1].doc.text[e.nstart:e.nend]}[{e.n}]" for e in evidence)
    return Draft(text, evidence, first.short_answer, quoted=True)


class Extractive:
    """Answers by quoting; see the module docstring."""

    name = "extractive"

    def generate(self, question: str, passages: Sequence[Passage], *,
                 idf: dict[str, float]) -> Draft:
        parts = split_question(question)
        if len(parts) > 1:
            return self._several(parts, passages, idf)
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
        return _draft(chosen, question, best)

    def _several(self, parts: list[str], passages: Sequence[Passage], idf: dict[str, float]) -> Draft:
        """One best sentence per part of a question that asks for several things."""
        chosen: list[Sentence] = []
        for part in parts:
            own = Weights({t: w for t, w in idf.items() if t in part},
                          idf.slot if isinstance(idf, Weights) else ())
            ranked = rank_sentences(passages, own or idf, part)
            if ranked and all(ranked[0].text != s.text for s in chosen):
                chosen.append(ranked[0])
        if not chosen:
            return Draft("", refused=True)
        return _draft(chosen, parts[0], chosen[0])

    def stream(self, question: str, passages: Sequence[Passage], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        yield self.generate(question, passages, idf=idf)  # quoted: qa renders the pieces
