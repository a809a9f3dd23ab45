"""Lexical search: Chinese-aware tokens and a BM25 index over them.

Hand-written tokenization because bm25s's (and llama-index's) default tokenizers split on
whitespace/regex words and leave Chinese nearly untokenized. Here jieba's search mode cuts the
normalized (Simplified) text, Latin words are lower-cased, punctuation and stop words dropped.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = (
    "STOPWORDS Lexicon tokenize "
).split()

STOPWORDS = frozenset(
    "的 了 和 与 及 或 在 是 为 将 于 对 把 被 等 也 都 而 并 其 之 以 从 "
    "向 由 中 上 下 这 那 哪 哪些 什么 怎么 怎样 如何 多少 几 谁 何 吗 呢 "
    "吧 啊 呀 么 有 有关 一 个 各 "
    "the a an of to in on at for and or is are was were be by with what which who whom "
    "when where why how did does do".split()
)
_WORD = re.compile(r"[\w\u3400-\u9fff]")


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Search-mode jieba tokens of already-normalized text.

    >>> tokenize("秦创原量子信息")
    ['秦创原', '量子', '信息']
    """
    out = []
    for tok in _jieba().cut_for_search(text):
        tok = tok.strip().lower()
        if not tok or not _WORD.search(tok):
            continue
        if not keep_stopwords and tok in STOPWORDS:
            continue
        out.append(tok)
    return out


class Lexicon:
    """A BM25 index (bm25s) over token lists; ``search`` returns (row, score) best first."""

    def __init__(self, corpus: Sequence[Sequence[str]]) -> None:
        import bm25s

        self.size = len(corpus)
        self._bm25 = bm25s.BM25(k1=1.2, b=0.75)
        if self.size:
            self._bm25.index([list(doc) for doc in corpus], show_progress=False)
        self._vocab: dict[str, int] = dict(self._bm25.vocab_dict or {}) if self.size else {}
        self._df = Counter(tok for doc in corpus for tok in set(doc))

    def idf(self, token: str) -> float:
        """BM25 inverse document frequency of a token (0 for tokens not in the corpus)."""
        df = self._df.get(token, 0)
        return float(np.log(1 + (self.size - df + 0.5) / (df + 0.5))) if df else 0.0

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        known = [t for t in tokens if t in self._vocab]
        if not known or not self.size:
            return []
        k = min(k, self.size)
        rows, scores = self._bm25.retrieve([known], k=k, show_progress=False, n_threads=1)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
