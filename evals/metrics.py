"""Pure metric functions: no I/O, no models, each checked on hand-made cases in tests/test_metrics.py.

Ranking metrics take a ``relevance`` list in rank order (``True`` = the passage/paragraph is
relevant) and score ONE query; average them with ``mean``. Ranks are 1-based.

>>> relevance = [False, True, False]
>>> first_relevant(relevance), hit_at(relevance, 1), hit_at(relevance, 5), reciprocal_rank(relevance)
(2, False, True, 0.5)

Answer scoring follows the official CMRC 2018 evaluation script: punctuation dropped, Chinese
compared character by character (Latin/digit runs as words), F1 from the longest common
substring, the maximum taken over the gold answers.

>>> round(f1("北京大学", ["北京"]), 3), em("「北京」", ["北京"])
(0.667, 1.0)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "CMRC_PUNCTUATION", "cmrc_tokens", "contains_any", "em", "f1", "facts_present",
    "first_relevant", "hit_at", "mean", "ndcg_at", "percentile", "reciprocal_rank",
    "refusal_scores", "strip_markers",
]

# The official script's punctuation list (plus half-width/ideographic spaces, which it strips
# too in practice: its segmenter drops them and its EM strips the ends).
CMRC_PUNCTUATION = frozenset(
    ["-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=", "，", "。", "：", "？", "！", "“",
     "”", "；", "’", "《", "》", "…", "·", "、", "「", "」", "（", "）", "－", "～", "『", "』"]
)
_CJK = re.compile(r"[\u4e00-\u9fa5]")
_LATIN_WORD = re.compile(r"\w+|[^\w\s]")  # stands in for nltk.word_tokenize on non-CJK runs
_MARKER = re.compile(r"\s*\[\d+\]")


# ---- ranking ------------------------------------------------------------------------------------
def first_relevant(relevance: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant item, ``None`` when none is relevant."""
    return next((i + 1 for i, r in enumerate(relevance) if r), None)


def hit_at(relevance: Sequence[bool], k: int) -> bool:
    """True when a relevant item is among the first ``k``."""
    return any(relevance[:k])


def reciprocal_rank(relevance: Sequence[bool]) -> float:
    """1 / rank of the first relevant item (0 when none): the per-query term of MRR."""
    rank = first_relevant(relevance)
    return 1.0 / rank if rank else 0.0


def ndcg_at(relevance: Sequence[bool], k: int, n_relevant: int | None = None) -> float:
    """Binary-gain NDCG@k. The ideal ranking puts ``n_relevant`` relevant items first (default:
    as many as ``relevance`` holds); a perfect ranking scores 1.0, no relevant item 0.0.

    >>> ndcg_at([True, False], 2), round(ndcg_at([False, True], 2), 3)
    (1.0, 0.631)
    """
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(relevance[:k]) if r)
    ideal_n = min(k, sum(map(bool, relevance)) if n_relevant is None else n_relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(ideal_n))
    return dcg / ideal if ideal else 0.0


# ---- aggregates ---------------------------------------------------------------------------------
def mean(values: Iterable[float | bool]) -> float | None:
    """Arithmetic mean; ``None`` (reported as n/a) for no values."""
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """``q``-th percentile (0-100) with linear interpolation (numpy's default); ``None`` if empty.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 100)
    (2.5, 4.0)
    """
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within [0, 100], not {q}")
    ordered = sorted(float(v) for v in values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def refusal_scores(
    refused: Sequence[bool], should_refuse: Sequence[bool]
) -> dict[str, float | int | None]:
    """Refusal precision (refusals that were right), recall (unanswerables refused) and the count
    of false refusals (answerable questions refused). Precision/recall are ``None`` when undefined.

    >>> refusal_scores([True, True, False], [True, False, True])
    {'precision': 0.5, 'recall': 0.5, 'false_refusals': 1}
    """
    if len(refused) != len(should_refuse):
        raise ValueError("refused and should_refuse must have the same length")
    pairs = list(zip(refused, should_refuse, strict=True))
    true_pos = sum(1 for r, s in pairs if r and s)
    n_refused = sum(1 for r, _ in pairs if r)
    n_should = sum(1 for _, s in pairs if s)
    return {
        "precision": true_pos / n_refused if n_refused else None,
        "recall": true_pos / n_should if n_should else None,
        "false_refusals": n_refused - true_pos,
    }


# ---- answers ------------------------------------------------------------------------------------
def strip_markers(text: str) -> str:
    """Drop citation markers, so ``[1]`` never counts as the digit 1.

    >>> strip_markers("福州新区[1]。")
    '福州新区。'
    """
    return _MARKER.sub("", text)


def facts_present(answer: str, facts: Sequence[Sequence[str]]) -> bool:
    """Gold-set correctness: every fact has at least one spelling in ``answer``. Both sides must
    already be normalized the same way (the harness uses ``to_simplified`` + casefold).

    >>> facts_present("在福州召开", [["福州新区", "福州"]]), facts_present("x", [["a"], ["x"]])
    (True, False)
    """
    return all(any(s and s in answer for s in spellings) for spellings in facts)


def contains_any(text: str, golds: Iterable[str]) -> bool:
    """True when ``text`` contains one of the non-empty ``golds``."""
    return any(g and g in text for g in golds)


def cmrc_tokens(text: str) -> list[str]:
    """The CMRC 2018 segmentation with punctuation removed: one token per Chinese character,
    Latin/digit runs split into words, lower-cased.

    >>> cmrc_tokens("光荣和ω-Force 2代")
    ['光', '荣', '和', 'ωforce', '2', '代']
    """
    out: list[str] = []
    run: list[str] = []
    for ch in text.lower().strip():
        if ch in CMRC_PUNCTUATION:
            continue
        if _CJK.match(ch):
            out += _LATIN_WORD.findall("".join(run))
            run = []
            out.append(ch)
        else:
            run.append(ch)
    out += _LATIN_WORD.findall("".join(run))
    return out


def _cmrc_plain(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch not in CMRC_PUNCTUATION and not ch.isspace())


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def em(prediction: str | None, golds: Sequence[str]) -> float:
    """CMRC 2018 exact match (1.0/0.0): equal after dropping punctuation and whitespace."""
    pred = _cmrc_plain(prediction or "")
    return 1.0 if any(pred == _cmrc_plain(g) for g in golds) else 0.0


def f1(prediction: str | None, golds: Sequence[str]) -> float:
    """CMRC 2018 F1: longest common substring of the token lists, max over ``golds``;
    an empty or missing prediction scores 0."""
    pred = cmrc_tokens(prediction or "")
    best = 0.0
    for gold in golds:
        ref = cmrc_tokens(gold)
        common = _longest_common_run(ref, pred)
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best
