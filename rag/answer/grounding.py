"""Ground an LLM's answer in the passages it was shown, sentence by sentence.

The model writes sentences ending in ``[n]`` markers and a last line ``简答：…``. ``Grounder``
takes its output as it streams, cuts it into sentences, and for each one:

- normalizes marker variants (``【1】``, ``[1, 2]``, ``[资料1]`` → ``[1][2]``) and drops numbers
  that name no passage;
- measures support against each sentence of its cited passages: the share of its new content
  (CJK bigrams, numbers, Latin words the sources contain; not the question's own words) found
  in that one passage sentence, and the share of the question words it repeats found there too
  (the answer must sit next to what was asked about). Both at ``MIN_SUPPORT`` or above keeps it;
- re-cites a sentence whose markers are missing or wrong when another passage supports it
  (the answer then points at text that says it; ``Draft.notes`` records the repair);
- the supporting passage sentence is the ``Evidence``, so the quote is an exact original
  substring (``rag.answer.cite``). A sentence ``rag.text.injection`` flags supports nothing (the model
  was not shown it), nor can it hold the short answer.

Unsupported sentences are dropped (``Draft.unsupported``). When nothing supported is left, the
answer is a refusal if the model said the documents lack the answer, else the extractive
answer (``Draft.fallback = "extractive"``). Overlap catches invented facts, wrong citations
and most mismatched pairings (an answer lifted from a sentence about something else); it
cannot catch a wrong pairing of words that all sit in one passage sentence.

    >>> sorted(grams("福州新区19个"))
    ['19', '个', '州新', '新区', '福州']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.answer.draft import Draft, Evidence, Passage
from rag.text.chunk import split_sentences
from rag.text.injection import flag_sentences, strip_flagged
from rag.text.normalize import to_simplified

__all__ = ["MIN_SUPPORT", "Grounder", "grams", "is_refusal", "normalize_markers"]

# Measured on evals/gold/seeds.jsonl with cached 0.5B outputs (README): stricter checking only
# raised accuracy (0.6: 68.4%, 0.8: 72.6%; sentence pairs as windows: 1 point lower).
MIN_SUPPORT = 0.8
REFUSALS = ("没有答案", "资料中没有", "资料中未", "资料未", "没有提到", "未提及", "没有相关信息",
            "无法回答", "无法确定", "not contain", "no information", "not mentioned", "cannot answer",
            "do not say", "does not say")
_NONE = {"", "无", "none", "n/a", "na", "没有", "不适用", "null"}
_VARIANT = re.compile(r"[\[【［]\s*(?:资料|資料|passage|来源|source)?\s*"
                      r"(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\s*[\]】］]", re.I)
_MARK = re.compile(r"\[(\d{1,3})\]")
_END = re.compile(r"[。！？!?；;]+[”’」』)）\"']*|\n|(?<![\s\d]\d)(?<!^\d)\.(?=\s)")  # not "1. "
_TRAIL = re.compile(r"(?:[ \t]*\[\d{1,3}\])+")
_PENDING = re.compile(r"\s*(?:[\[【［][^\]】］\n]{0,12})?")  # a marker may still be arriving
_SHORT = re.compile(r"^(?:简答|簡答|short answer)\s*[:：]\s*(.*)$", re.I | re.S)
_LABEL = re.compile(r"^(?:回答|答案|答|answer)\s*[:：]\s*", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,2}[.、)）]|[（(]\d{1,2}[)）])\s*")
_TOKEN = re.compile(r"[\u3400-\u9fff]+|[a-z0-9]+(?:\.[0-9]+)?")
_GLUE = set("的了是在为有和与及等也都而并其之以从向由对把被将于")
_EDGES = " \t\n。.,，;；:：!！?？\"“”'‘’「」『』"


def normalize_markers(text: str) -> str:
    """``【1】``, ``[1, 2]``, ``[资料3]`` → ``[1]``, ``[1][2]``, ``[3]``.

    >>> normalize_markers("福州新区【1】,天府新区[资料2、3]")
    '福州新区[1],天府新区[2][3]'
    """
    return _VARIANT.sub(lambda m: "".join(f"[{n}]" for n in re.findall(r"\d+", m.group(1))), text)


def grams(text: str) -> set[str]:
    """Checkable tokens: CJK bigrams (a lone CJK character as itself), Latin words, numbers."""
    out: set[str] = set()
    for m in _TOKEN.finditer(to_simplified(text).casefold()):
        t = m.group()
        if "\u3400" <= t[0] <= "\u9fff" and len(t) > 1:
            out.update(t[i:i + 2] for i in range(len(t) - 1))
        else:
            out.add(t)
    return out


def is_refusal(text: str) -> bool:
    low = to_simplified(text).casefold()
    return any(p in low for p in REFUSALS)


def _latin(text: str) -> bool:
    letters = sum(ch.isascii() and ch.isalpha() for ch in text)
    return letters > sum("\u3400" <= ch <= "\u9fff" for ch in text)


def _content(sentence: str, source: set[str]) -> set[str]:
    """``sentence``'s checkable tokens: glue bigrams (``是夏`` in 书记是夏晓中) left out; in a
    mostly-Latin sentence, English words only when ``source`` has them (Chinese sources can
    neither confirm nor refute them)."""
    toks = {t for t in grams(sentence) if len(t) != 2 or not _GLUE.intersection(t)}
    if _latin(sentence):
        toks = {t for t in toks if not t.isalpha() or not t.isascii() or t in source}
    return toks


def support(sentence: str, source: set[str], question: set[str]) -> float:
    """How well ``source`` (the tokens of one passage sentence) supports ``sentence``: the
    smaller of the share of its new content (tokens not in the question) found there and the
    share of the question words it repeats found there: the answer must sit next to what was
    asked about, not elsewhere in the passage. Only restating the question supports nothing.

    >>> q = grams("陕西咸阳市的市长是谁")
    >>> support("咸阳市的市长是冷劲松", grams("咸阳市市长冷劲松主持。"), q)
    1.0
    >>> round(support("咸阳市的市长是夏晓中", grams("咸阳市委书记夏晓中,西咸新区党工委书记杨仁华"), q), 2)
    0.67
    >>> support("陕西咸阳市的市长是谁", grams("咸阳市市长冷劲松主持。"), q)
    0.0
    """
    toks = _content(sentence, source)
    novel, echo = toks - question, toks & question
    if not novel:
        return 0.0
    found = len(novel & source) / len(novel)
    return min(found, len(echo & source) / len(echo)) if echo else found


def _news_found(sentence: str, sources: Sequence[set[str]], question: set[str]) -> bool:
    """Is the new content of a lead-in ("会上发言的新区有：") somewhere in the passages?"""
    novel = _content(sentence, set().union(*sources)) - question
    return not novel or any(len(novel & src) / len(novel) >= MIN_SUPPORT for src in sources)


def _windows(text: str) -> list[tuple[int, int, set[str]]]:
    """The sentences of a passage with their tokens: ``(start, end, tokens)``; flagged ones
    (``rag.text.injection``) left out."""
    flagged = {(a, b) for a, b, _ in flag_sentences(text)}
    return [(a, b, grams(text[a:b])) for a, b in split_sentences(text) if (a, b) not in flagged]


@dataclass
class _State:
    kept: list[str] = field(default_factory=list)  # rendered pieces, in order
    held: list[str] = field(default_factory=list)  # lead-ins ("…如下：") waiting for content
    evidence: list[Evidence] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    short: str | None = None
    sentences: int = 0
    refusal: bool = False
    ws: str = ""  # whitespace seen since the last piece


class Grounder:
    """Feed model output with ``feed`` (returns the verified pieces to show, in order), then
    ``finish`` for the ``Draft``. ``fallback`` answers when nothing the model said holds up."""

    def __init__(self, question: str, passages: Sequence[Passage],
                 fallback: Callable[[], Draft]) -> None:
        self.passages = passages
        self.question = grams(question)
        self.sources = [grams(strip_flagged(p.text)) for p in passages]
        self.windows = [_windows(p.text) for p in passages]
        self.fallback = fallback
        self.buf = ""
        self.s = _State()

    def feed(self, delta: str) -> list[str]:
        self.buf += delta
        return self._drain(final=False)

    def finish(self) -> Draft:
        self._drain(final=True)
        s = self.s
        text = "".join(s.kept).strip()
        if not s.evidence:
            if s.refusal:
                return Draft("", refused=True, notes=s.notes)
            draft = self.fallback()
            draft.fallback = "extractive"
            draft.unsupported, draft.sentences = s.unsupported, s.sentences
            draft.notes = [*s.notes, "no supported sentence: fell back to the extractive answer"]
            return draft
        return Draft(text, _dedupe(s.evidence), self._short(), unsupported=s.unsupported,
                     sentences=s.sentences, notes=s.notes)

    # -- sentences ---------------------------------------------------------------------------

    def _drain(self, *, final: bool) -> list[str]:
        buf = normalize_markers(self.buf)
        out, at = [], 0
        for m in _END.finditer(buf):
            if m.start() < at:
                continue
            end = m.end()
            if trail := _TRAIL.match(buf, end):
                end = trail.end()
            if not final and _PENDING.fullmatch(buf, end):
                break
            out += self._sentence(buf[at:end])
            at = end
        if final:
            out += self._sentence(buf[at:])
            at = len(buf)
        self.buf = buf[at:]
        return out

    def _sentence(self, raw: str) -> list[str]:
        s = self.s
        core = raw.strip()
        s.ws += raw[:len(raw) - len(raw.lstrip())]
        trailing = raw[len(raw.rstrip()):] if core else ""
        try:
            return self._check(core)
        finally:
            s.ws += trailing

    def _check(self, core: str) -> list[str]:
        s = self.s
        if not s.kept and not s.held:
            core = _LABEL.sub("", core)
        if short := _SHORT.match(core):
            s.short = short.group(1).split("\n")[0]
            return []
        plain = _MARK.sub("", core).strip()
        check = _BULLET.sub("", plain)
        if not grams(check) or any(_MARK.sub("", k).strip() == plain for k in s.kept):
            return []  # punctuation only, or the model repeating itself
        if is_refusal(plain):
            s.refusal = True
            return []
        s.sentences += 1
        cited = [n for n in dict.fromkeys(int(x) for x in _MARK.findall(core))
                 if 1 <= n <= len(self.passages)]
        if plain[-1:] in (":", "："):  # a lead-in: shown only with the content that follows
            if not _news_found(check, self.sources, self.question):
                s.unsupported.append(plain)
                return []
            s.held.append(self._prefix() + _MARK.sub("", core))
            return []
        found = [(n, *self._best(check, n)) for n in cited]
        good = [(n, a, b) for n, score, a, b in found if score >= MIN_SUPPORT]
        if good:
            keep = {n for n, _, _ in good}
            core = _MARK.sub(lambda m: m.group(0) if int(m.group(1)) in keep else "", core)
        else:
            n, score, a, b = max(((i, *self._best(check, i)) for i in range(1, len(self.passages) + 1)),
                                 key=lambda x: x[1], default=(0, 0.0, 0, 0))
            if score < MIN_SUPPORT:
                s.unsupported.append(plain)
                return []
            s.notes.append(f"re-cited [{n}]: {plain}")
            good = [(n, a, b)]
            core = plain + f"[{n}]"
        s.evidence += [Evidence(n, self._offset(n) + a, self._offset(n) + b) for n, a, b in good]
        pieces = [*s.held, self._prefix() + core]
        s.held = []
        s.kept += pieces
        return pieces

    def _prefix(self) -> str:
        """The whitespace the model put before this piece ("\\n" or " "), none at the start."""
        s = self.s
        prefix = ("\n" if "\n" in s.ws else " " if s.ws else "") if s.kept or s.held else ""
        s.ws = ""
        return prefix

    def _offset(self, n: int) -> int:
        return self.passages[n - 1].hit.chunk.nstart

    def _best(self, check: str, n: int) -> tuple[float, int, int]:
        """The best support any window of passage ``n`` gives ``check``, and that window."""
        return max(((support(check, g, self.question), a, b) for a, b, g in self.windows[n - 1]),
                   key=lambda x: (x[0], x[1] - x[2]), default=(0.0, 0, 0))

    def _short(self) -> Evidence | None:
        """The model's short answer, if it is an exact span of a cited passage (normalized)."""
        if self.s.short is None:
            return None
        value = to_simplified(_MARK.sub("", self.s.short)).strip(_EDGES)
        if value.casefold() in _NONE or len(value) > 40:
            return None
        for n in dict.fromkeys(ev.n for ev in self.s.evidence):
            p = self.passages[n - 1]
            for a, b, _ in self.windows[n - 1]:  # in a sentence it may quote
                at = p.text.find(value, a, b)
                if at >= 0:
                    return Evidence(n, p.hit.chunk.nstart + at, p.hit.chunk.nstart + at + len(value))
        return None


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    return list(dict.fromkeys(evidence))
