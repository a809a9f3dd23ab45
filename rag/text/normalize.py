"""Search text for Chinese documents, with a map back to every original character.

``normalize(text)`` returns a ``Normalized`` whose ``text`` is what BM25, the embedder and the
answer matcher see, and whose ``origin[i]`` is the index in the ORIGINAL text of normalized
character ``i``. Citations are found in normalized space and quoted from the original through
this map, so a quote is always an exact substring of the file the user gave us.

Hand-written because no library keeps offsets through these steps: OpenCC converts whole
strings, and regex substitution loses positions. The steps, in order:

1. drop pinyin annotations glued after a CJK character: ``區(qū)`` → ``區`` (``省(市)`` stays);
2. Unicode NFKC per character (full-width letters/digits → ASCII) where it keeps one character,
   OpenCC Traditional→Simplified, then ``VARIANTS`` for what OpenCC leaves (``陜`` → ``陕``);
3. drop scraping boilerplate (``BOILERPLATE``: whole-line and inline patterns);
4. runs of spaces/tabs collapse to one space; blank lines collapse.

>>> n = normalize("西咸新區(qū)")
>>> n.text, n.origin
('西咸新区', [0, 1, 2, 3])
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "BOILERPLATE",
    "PINYIN",
    "VARIANTS",
    "Normalized",
    "has_cjk",
    "is_traditional",
    "normalize",
    "to_simplified",
    "to_traditional",
]

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"

# A parenthesized lowercase syllable carrying a tone mark, right after a CJK character.
PINYIN = re.compile(rf"(?<=[{_CJK}])\((?=[a-zü{_TONED}]*[{_TONED}])[a-zü{_TONED}]{{1,7}}\)")

# Scraping boilerplate, one readable rule each: (name, pattern), matched on the Simplified,
# NFKC-folded text (so one pattern serves both scripts and full-width colons). Line rules match
# a whole line (the newline goes too); inline rules remove just the match. Each rule has a test.
BOILERPLATE: list[tuple[str, re.Pattern[str]]] = [
    ("empty image link", re.compile(r"!\[[^\]\n]*\]\(\s*\)")),
    ("login wall", re.compile(r"(?m)^.*您需要\s*登录\s*才可以下载或查看.*(?:\n|$)")),
    ("view counter", re.compile(r"(?m)^[ \t]*浏览次数[ \t]*:[ \t]*\d*[ \t]*次?[ \t]*(?:\n|$)")),
    ("forum sign-up bait", re.compile(r"(?m)^.*都注册了,?\s*还不快来.*(?:\n|$)")),
    ("lone symbol line", re.compile(r"(?m)^[ \t]*[×|✕][ \t]*(?:\n|$)")),
]

# Characters OpenCC's t2s leaves alone but users type in their simplified form.
VARIANTS = {"陜": "陕", "峯": "峰", "羣": "群", "衆": "众", "裏": "里", "綫": "线", "鷄": "鸡",
            "啓": "启", "爲": "为", "僞": "伪", "産": "产", "衛": "卫"}


@dataclass(frozen=True)
class Normalized:
    """Normalized ``text`` and, per character, its index in the original (``origin``)."""

    text: str
    origin: list[int]
    original_length: int

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` covering normalized ``[start, end)`` (end exclusive)."""
        if start >= end:
            at = self.origin[start] if start < len(self.origin) else self.original_length
            return at, at
        return self.origin[start], self.origin[end - 1] + 1


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _s2t():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("s2t")


def _drop(chars: list[str], origin: list[int], pattern: re.Pattern[str]) -> None:
    """Delete every match of ``pattern`` from ``chars`` (and ``origin``), in place."""
    spans = [m.span() for m in pattern.finditer("".join(chars)) if m.end() > m.start()]
    for a, b in reversed(spans):
        del chars[a:b], origin[a:b]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_surrogates(text: str) -> str:
    """Lone surrogates (from ``\\ud800`` in JSON, or undecodable bytes in ``argv``) become U+FFFD,
    one for one: OpenCC encodes to UTF-8 and cannot take them."""
    return _SURROGATE.sub("\ufffd", text)


def _convert(chars: list[str]) -> list[str]:
    """NFKC, then OpenCC t2s with one output character per input character (a line whose
    phrase conversion changes length is converted character by character), then VARIANTS."""
    cc = _t2s()
    folded = []
    for ch in _no_surrogates("".join(chars)):
        nf = unicodedata.normalize("NFKC", ch)
        folded.append(nf if len(nf) == 1 else ch)
    out: list[str] = []
    for line in re.split(r"(\n)", "".join(folded)):
        conv = cc.convert(line) if line else line
        if len(conv) != len(line):
            conv = "".join(c2 if len(c2 := cc.convert(c)) == 1 else c for c in line)
        out.extend(conv)
    return [VARIANTS.get(c, c) for c in out]


def _collapse_space(chars: list[str], origin: list[int]) -> tuple[list[str], list[int]]:
    out: list[str] = []
    at: list[int] = []
    for ch, i in zip(chars, origin, strict=True):
        if ch != "\n" and ch.isspace():
            ch = " "
        if ch == " " and (not out or out[-1] in " \n"):
            continue
        if ch == "\n":
            while out and out[-1] == " ":
                out.pop()
                at.pop()
            if not out or out[-1] == "\n":
                continue
        out.append(ch)
        at.append(i)
    while out and out[-1] in " \n":
        out.pop()
        at.pop()
    return out, at


def normalize(text: str) -> Normalized:
    """Search text plus the offset map; see the module docstring for the steps."""
    chars = list(text)
    origin = list(range(len(text)))
    _drop(chars, origin, PINYIN)
    chars = _convert(chars)
    for _, rule in BOILERPLATE:
        _drop(chars, origin, rule)
    chars, origin = _collapse_space(chars, origin)
    return Normalized("".join(chars), origin, len(text))


def to_simplified(text: str) -> str:
    """Plain normalization of a short string (a question, an expected answer)."""
    return normalize(text).text


def to_traditional(text: str) -> str:
    return str(_s2t().convert(_no_surrogates(text)))


def has_cjk(text: str) -> bool:
    """Does ``text`` hold a Chinese character (CJK Unified Ideographs and Extension A)?"""
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def is_traditional(text: str) -> bool:
    """True when the text has more Traditional-only characters than Simplified-only ones."""
    text = _no_surrogates(text)
    simplified = str(_t2s().convert(text))
    traditional = str(_s2t().convert(text))
    trad_only = sum(a != b for a, b in zip(text, simplified, strict=False))
    simp_only = sum(a != b for a, b in zip(text, traditional, strict=False))
    return trad_only > simp_only
