"""Short answers: the minimal span of a sentence that answers a factoid question.

No reading-comprehension model ships offline here, so this is a scorer over candidate spans,
in the spirit of pre-neural Chinese QA. The sentence's characters that repeat the question
(runs of two or more) are "anchors"; candidates are the stretches between anchors and
punctuation, trimmed of function characters. A candidate is scored by a linear function of a
few features (``WEIGHTS``, fitted on CMRC 2018 dev by ``evals.span_fit``): touching anchors on
either side, lying in the question's wh-slot (the text between the question's words before and
after 谁/哪/什么/多少…), holding a number when the question asks for one, running into the
question's head noun (哪一平原 → 嘉南平原, which it then includes), sitting in the clause that
repeats most of the question, on the side of it where the question put its wh-word, and so on.
"""

from __future__ import annotations

import re

__all__ = ["WEIGHTS", "candidates", "short_span"]

# Wh-words, longest first; the question's text around one of them frames the answer.
_WH = sorted(
    "哪一年 哪一天 什么时候 什么地方 哪些 哪个 哪位 哪家 哪里 哪儿 哪年 哪天 "
    "哪国 哪座 哪种 哪项 哪次 哪 什么 多少 几 谁 何时 何地 何处 何人 何种 何 "
    "多久 多长 多大 多高 多远 怎样 怎么 如何 为何 为什么".split(),
    key=len, reverse=True,
)
_NOT_FACTOID = ("哪些", "如何", "为何", "为什么", "怎么", "怎样")
_STOP_AT = re.compile(r"[,。;!?:“”\"()《》\n]|,")
_OPENS_SLOT = re.compile(r"[,。;!?:“”\"()《》\n、]|在|于|由|是|为")
_EDGE = "的了是为在和与及等,、:;.。 "


def _split_question(question: str) -> tuple[str, str, str] | None:
    q = question.strip().rstrip("?？。!！ ")
    for wh in _WH:
        at = q.find(wh)
        if at >= 0:
            if wh == "为什么" and at > 0 and q[at - 1] in "称成作视认":  # "称为什么" = "called what"
                wh, at = "什么", at + 1
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


def _slot(question: str, sentence: str) -> tuple[int, int] | None:
    """The text between the question's words around its wh-word, as found in ``sentence``."""
    parts = _split_question(question)
    if parts is None or parts[1] in _NOT_FACTOID:
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


_PUNCT = set("，。、；：,;:！？!?（）()“”‘’\"'〈〉【】 \n—…·．")
_FUNCTION = set("的了是在为于和与及等被由将从向对把也都而并其之以又即就则乃这那该此有")
_ASKS_NUMBER = re.compile(
    r"多少|几|何年|哪一?年|年代|何时|什么时候|年份|多久|多长|多大|多高|多重|多远|百分|第几|哪天|日期")
_NUMBER = re.compile(r"[0-9一二三四五六七八九十百千万亿两〇零]")
_COUNTERS = "一个位家种座条项所名"
# Coverbs and conjunctions that end a candidate: a span rarely runs across them.
_SPLIT = set("在由将被把向从对与为是曾并而于及和但则")
_NUMERIC_PART = re.compile(
    r"[0-9一二三四五六七八九十百千万亿两〇零.]+(?:[年月日号个处名人位次届岁万亿%]|世纪|年代)*")


def _anchors(question: str, sentence: str) -> list[bool]:
    """Per sentence character: is it inside a run of 2+ characters that the question repeats?"""
    marked = [False] * len(sentence)
    i = 0
    while i < len(sentence):
        j = i
        while j < len(sentence) and sentence[i:j + 1] in question:
            j += 1
        if j - i >= 2:
            marked[i:j] = [True] * (j - i)
            i = j
        else:
            i += 1
    return marked


def _candidates(sentence: str, marked: list[bool]) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < len(sentence):
        if marked[i] or sentence[i] in _PUNCT:
            i += 1
            continue
        j = i
        while j < len(sentence) and not marked[j] and sentence[j] not in _PUNCT and not (
                j > i and sentence[j] in _SPLIT):
            j += 1
        a, b = i, j
        while a < b and sentence[a] in _FUNCTION:
            a += 1
        while b > a and sentence[b - 1] in _FUNCTION:
            b -= 1
        if b > a:
            out.append((a, b))
        i = j
    return out


# Weights of the candidate features (``candidates``), fitted by ``python -m evals.span_fit`` on
# CMRC 2018 dev with the gold sentence given (softmax over each question's candidates, target:
# the best char-F1). Held out on DRCD dev: char-F1 0.408, against 0.378 for the hand-set scores
# they replaced (CMRC, fitted on: 0.455 vs 0.409).
WEIGHTS = {
    "touches_left": 0.44, "touches_right": 0.41, "anchor_distance": -0.21, "one_char": -1.46,
    "size": 1.28, "oversize": -0.81, "number": 1.74, "head_follows": 1.00, "ends_like_head": 0.94,
    "in_slot": 1.77, "after_anchors": -0.32, "before_anchors": -0.21, "person": 0.32, "place": 0.75,
    "quoted": 0.29, "before_copula": -0.27, "clause_share": 0.38, "best_clause": -0.14,
    "clause_distance": -0.10, "asked_first_before": 0.37, "asked_last_after": 0.76,
    "asked_first_anchors_after": 0.66, "asked_last_anchors_before": 0.45,
}
_DETERMINERS = ("哪", "哪个", "哪些", "哪位", "哪家", "哪国", "哪座", "哪种", "哪项", "哪次", "什么",
                "何种", "几", "多少")
_PLACE = set("国州省市县区岛山河湖城镇村港湾洲洋海江")
_ASKS_PLACE = ("哪里", "哪儿", "何地", "何处", "什么地方")
_OPENING = set("《「“\"『")


def _clauses(sentence: str, marked: list[bool]) -> tuple[list[int], list[float]]:
    """Per character, the index of its clause (text between punctuation); per clause, its share
    of the sentence's anchor characters."""
    of: list[int] = []
    shares: list[float] = []
    at = 0
    total = max(1, sum(marked))
    for i, ch in enumerate(sentence):
        of.append(len(shares))
        if ch in _PUNCT or i == len(sentence) - 1:
            shares.append(sum(marked[at:i + 1]) / total)
            at = i + 1
    return of, shares or [0.0]


def candidates(question: str, sentence: str) -> list[tuple[int, int, dict[str, float]]]:
    """Each candidate span ``[a, b)`` of ``sentence`` with its features (``WEIGHTS``' keys);
    empty for lists and explanations, or when the sentence shares nothing with the question."""
    q = question.strip().rstrip("?？。!！ ")
    parts = _split_question(q)
    if parts and parts[1] in _NOT_FACTOID:
        return []
    marked = _anchors(q, sentence)
    anchored = [k for k, m in enumerate(marked) if m]
    if not anchored:
        return []
    head = ""
    if parts and parts[1] in _DETERMINERS:  # 哪一平原: the noun it asks for; 哪里召开: a verb
        found = re.match(r"[\u4e00-\u9fff]{0,2}", parts[2].lstrip(_COUNTERS))
        head = found.group(0) if found else ""
    wh = parts[1] if parts else ""
    asked_at = len(parts[0]) / max(1, len(q)) if parts else 0.5  # 0: asked first, 1: last
    wants_number = bool(_ASKS_NUMBER.search(q))
    slot = _slot(q, sentence)
    clause_of, shares = _clauses(sentence, marked)
    best_clause = max(range(len(shares)), key=shares.__getitem__)
    out = []
    for a, b in _candidates(sentence, marked):
        number = _NUMERIC_PART.search(sentence, a, b) if wants_number else None
        if number:  # the whole value, unit included, even where the question repeats the unit
            a, b = _NUMERIC_PART.match(sentence, number.start()).span()  # type: ignore[union-attr]
        head_follows = bool(head) and sentence.startswith(head, b)
        end = b + len(head) if head_follows else b
        size, clause = b - a, clause_of[min(a, len(clause_of) - 1)]
        same = [k for k in anchored if clause_of[k] == clause]
        f = {
            "touches_left": a > 0 and (marked[a - 1] or (a >= 2 and sentence[a - 1] in _FUNCTION
                                                         and marked[a - 2])),
            "touches_right": b < len(sentence) and (marked[b] or (
                b + 1 < len(sentence) and sentence[b] in _FUNCTION and marked[b + 1])),
            "anchor_distance": min(min(abs(k - a), abs(k - b)) for k in anchored) / 10,
            "one_char": size == 1, "size": min(size, 30) / 10, "oversize": max(0, size - 12) / 10,
            "number": (1 if number else -1) if wants_number else 0,
            "head_follows": head_follows,
            "ends_like_head": bool(head) and not head_follows and sentence[a:b].endswith(head[-1]),
            "in_slot": bool(slot) and not (slot[1] <= a or slot[0] >= b),  # type: ignore[index]
            "after_anchors": a > anchored[-1], "before_anchors": b <= anchored[0],
            "person": wh == "谁" and 2 <= size <= 4,
            "place": sentence[b - 1] in _PLACE and (wh in _ASKS_PLACE or head[:1] in _PLACE),
            "quoted": a > 0 and sentence[a - 1] in _OPENING,
            "before_copula": b < len(sentence) and sentence[b] in "是为",
            "clause_share": shares[clause], "best_clause": clause == best_clause,
            "clause_distance": abs(clause - best_clause) / 3,
            "asked_first_before": (1 - asked_at) * (b <= anchored[0]),
            "asked_last_after": asked_at * (a > anchored[-1]),
            "asked_first_anchors_after": (1 - asked_at) * sum(k >= b for k in same) / len(anchored),
            "asked_last_anchors_before": asked_at * sum(k < a for k in same) / len(anchored),
        }
        out.append((a, end, {k: float(v) for k, v in f.items()}))
    return out


def short_span(question: str, sentence: str) -> tuple[int, int] | None:
    """``[a, b)`` in ``sentence`` answering a factoid ``question``: the best-scoring candidate
    (``WEIGHTS``); None for lists and explanations, or when the sentence shares nothing with
    the question.

    >>> short_span("咸阳市委书记是谁?", "咸阳市委书记夏晓中,西咸新区党工委书记杨仁华")
    (6, 9)
    >>> s = "为嘉南平原的范围"; a, b = short_span("嘉义属哪一平原之范围?", s); s[a:b]
    '嘉南平原'
    >>> s = "1973年产生的细菌"; a, b = short_span("西元几年产生的细菌?", s); s[a:b]
    '1973年'
    """
    scored = [(sum(WEIGHTS[k] * v for k, v in f.items()), a, b)
              for a, b, f in candidates(question, sentence)]
    if not scored:
        return None
    _, a, b = max(scored, key=lambda s: s[0])  # the first of equals
    return a, b
