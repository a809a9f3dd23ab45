"""Clean-up every extractor needs for Chinese text, written by hand because the libraries get it
wrong: they join a wrapped line with a space (five false spaces in every wrapped Chinese
paragraph) and keep the Kangxi radicals some PDF producers write instead of unified characters.

Full NFKC is not an option: it turns ``，`` into ``,`` and U+3000 into a space, and quotes must
stay exactly as the document wrote them. Only the radical and compatibility blocks are mapped,
one character to one character.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["is_wide", "join_wrapped", "tidy", "unify_radicals"]

# CJK Radicals Supplement characters without a Unicode decomposition, mapped to the unified
# ideograph each stands for (Unicode's EquivalentUnifiedIdeograph.txt): the ones that occur
# as whole characters in the text layers of Chinese PDFs.
_SUPPLEMENT = dict(zip(
    "⻓⻔⻅⻉⻋⻢⻛⻜⻥⻦⻩⻬⻮⻰⻳⻙⻚⻆⻄⻁⻘⻝⻟⻣⻤⻨⻧⻪⺠⺟"
    "⺩⺮⺝⺼⺊⺁⻌⻍⻎⻗⺬⺻⺽⺪⺒⺓⻑⻈⻐⻠⺰⺅⺘⺡⺖⺨⺾⻂⺭⺣"
    "⺙",
    "长门见贝车马风飞鱼鸟黄齐齿龙龟韦页角西虎青食食骨鬼麦卤黾民母"
    "王竹月月卜厂辶辶辶雨示聿臼疋巳幺長讠钅饣纟亻扌氵忄犭艹衤礻灬"
    "攵",
    strict=True))
_RADICALS = re.compile("[\u2e80-\u2eff\u2f00-\u2fdf\uf900-\ufaff\U0002f800-\U0002fa1f]")


def _unified(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _SUPPLEMENT:
        return _SUPPLEMENT[ch]
    folded = unicodedata.normalize("NFKC", ch)
    return folded if len(folded) == 1 else ch


def unify_radicals(text: str) -> str:
    """Kangxi radicals, radical supplements and compatibility ideographs → unified ideographs,
    one for one (offsets do not move).

    >>> unify_radicals("⽅程式，⻓江")
    '方程式，长江'
    """
    return _RADICALS.sub(_unified, text)


def is_wide(ch: str) -> bool:
    """Characters written without spaces between them: CJK ideographs, kana, hangul, and
    full-width punctuation (，。「」…)."""
    return unicodedata.east_asian_width(ch) in "WF"


def join_wrapped(left: str, right: str) -> str:
    """What goes between two pieces of one paragraph that a line wrap separated: nothing when
    either side is wide (CJK, ``，``) or the left ends in a hyphenated word part, else one space.

    >>> join_wrapped("通过", "OpenAI"), join_wrapped("OpenAI", "API"), join_wrapped("数据", "。")
    ('', ' ', '')
    """
    a, b = left.rstrip()[-1:], right.lstrip()[:1]
    if not a or not b or is_wide(a) or is_wide(b):
        return ""
    if a == "-" and len(left.rstrip()) > 1 and left.rstrip()[-2].isalpha():
        return ""  # "exam-\nple": the producer's hyphenation stays, glued
    return " "


_INLINE_SPACE = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Whitespace clean-up for extracted text: spaces and tabs inside a line collapse to one
    (U+3000, the ideographic space, is kept: it is an indent the author typed), trailing spaces
    go, and runs of blank lines become one blank line.

    >>> tidy("第一段  文字 \\n\\n\\n\\n第二段")
    '第一段 文字\\n\\n第二段'
    """
    lines = [_INLINE_SPACE.sub(" ", line).rstrip() for line in text.replace("\r\n", "\n")
             .replace("\r", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")
