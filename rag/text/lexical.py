"""Lexical search: Chinese-aware tokens and a BM25 index over them.

Hand-written tokenization because bm25s's (and llama-index's) default tokenizers split on
whitespace/regex words and leave Chinese nearly untokenized. Here jieba's search mode cuts the
normalized (Simplified) text, Latin words are lower-cased, punctuation and stop words dropped.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Protocol

import numpy as np

__all__ = ("ALTERNATIVE FRAME_WORDS STOPWORDS Lexicon TermStats Weights agent_verb answer_slot coverage "
           "longest_run occurs question_weights tokenize").split()

# Joins the alternatives of one weights key: an English word's Chinese translations
# ("书记|秘书", rag.text.crosslingual); ``occurs`` and ``coverage`` count the key once if any occurs.
ALTERNATIVE = "|"
STOPWORDS = frozenset(
    "的 了 和 与 及 或 在 是 为 将 于 对 把 被 等 也 都 而 并 其 之 以 从 "
    "向 由 中 上 下 这 那 哪 哪些 什么 怎么 怎样 如何 多少 几 谁 何 吗 呢 "
    "吧 啊 呀 么 有 有关 一 个 各 "
    "the a an of to in on at for and or is are was were be by with what which who whom "
    "when where why how did does do".split()
)
# Words that frame a question rather than name what it is about ("what position does X hold?"):
# a passage that answers rarely repeats them, so they weigh nothing when matching questions.
FRAME_WORDS = frozenset(
    "职务 担任 身兼 提到 提出 表示 介绍 称为 称作 叫 名字 两篇 报道 文章 这次 本次 除了 之外 还有 "
    "一共 全称 参与 属于 同时 分别 哪里 哪儿 位置 处于 什么样 怎样 形容 为了 哪几 几个 几位 几家 "
    "几所 几次 第几 哪一 哪个 哪位 哪家 哪项 哪种 具体 主要 内容 方面 哪些方面 包括 有关 相关 "
    "分别是 是否 认为 根据 文中 文档 据 所说 说 讲 谈到 指出 强调 "
    # function words a paraphrase drops or swaps
    "一个 一种 一位 一项 一次 之一 外 后 前 时 至 所 会 到 可 可以 能 能够 只有 已经 如果 那么 以及 "
    "对于 关于 还 仍 仍然 约 大约 将近 现在 以前 当时 目前 曾 曾经 让 使 由于 因为 所以 但 但是 虽然 而且 "
    "并且 或者 还是 既 又 就是 就 才 又 再 更 最 很 非常 一直 时候 期间 当中 其中 以来 通过 进行 "
    "被称为 称之为 指的是 指 是指 所谓 来说 而言 "
    # pronouns (what they point to is named elsewhere), modal and reporting verbs
    "它 他 她 它们 他们 她们 我们 你们 之间 关系 要 需要 应 应该 希望 打算".split()
)
# Any token holding an interrogative asks rather than names (哪一年, 何时, 哪场, 有何, 几日).
_ASKING = re.compile(r"哪|何(?:时|年|地|处|人|种|者|以|在)|^有何|谁|什么|多少|^几|怎|吗$|呢$")
_WORD = re.compile(r"[\w\u3400-\u9fff]")


@lru_cache(maxsize=1)
def _jieba():  # type: ignore[no-untyped-def]
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def _posseg():  # type: ignore[no-untyped-def]
    _jieba()
    import jieba.posseg

    return jieba.posseg


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


class TermStats(Protocol):
    """Document frequencies of the collection's BM25 tokens (what IDF weights are made of)."""

    size: int  # chunks

    def __contains__(self, token: object) -> bool: ...

    @property
    def unseen_idf(self) -> float: ...

    def idf(self, token: str) -> float: ...

    def prefetch(self, tokens: Sequence[str]) -> None: ...  # look these up at once, if remote


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

    def __contains__(self, token: object) -> bool:
        return token in self._df

    @property
    def unseen_idf(self) -> float:
        """The IDF a word the collection lacks gets: the highest (it is the rarest)."""
        return float(np.log(1 + (self.size + 0.5) / 0.5))

    def idf(self, token: str) -> float:
        """BM25 inverse document frequency of a token (0 for tokens not in the corpus)."""
        df = self._df.get(token, 0)
        return float(np.log(1 + (self.size - df + 0.5) / (df + 0.5))) if df else 0.0

    def prefetch(self, tokens: Sequence[str]) -> None:
        """Nothing to do: the frequencies are in memory."""

    def search(self, tokens: Sequence[str], k: int, mask: np.ndarray | None = None
               ) -> list[tuple[int, float]]:
        """Best rows first; with ``mask`` (1.0 per row allowed, 0.0 else) only allowed rows."""
        known = [t for t in tokens if t in self._vocab]
        if not known or not self.size:
            return []
        k = min(k, self.size)
        # n_threads=0: scored in this thread (n_threads=1 started a thread pool per query)
        rows, scores = self._bm25.retrieve([known], k=k, show_progress=False, n_threads=0,
                                           weight_mask=mask)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]


_DETERMINER = re.compile(r"^(?:哪(?!里|儿)|什么|怎样|怎么样|何种|几)")
_ASPECT = (["了"], ["过"], ["着"])
_COUNTED = re.compile(r"^[一二三四五六七八九十两几]+[个位家份所项种条名座篇次届批]$")


def answer_slot(question: str) -> set[str]:
    """The words of ``question`` that ask or name the kind of answer: the interrogatives, the
    noun right after one (哪份**文件**, 怎样的**平台**, 哪**两位**, 哪五家**国家级**新区) and the
    noun before 有哪 (**高校**有哪几所). A passage that answers fills the slot instead of
    repeating it. A word followed by 了/过/着 is a verb, not the noun asked for.

    >>> sorted(answer_slot("西安本地高校有哪几所?"))
    ['几所', '哪', '高校']
    """
    words = [w for w in _jieba().cut(question) if _WORD.search(w)]
    slot: set[str] = set()
    for i, w in enumerate(words):
        if not _ASKING.search(w):
            continue
        slot.add(w)
        if i >= 2 and words[i - 1] == "有" and w.startswith("哪"):
            slot.add(words[i - 2])
        if not _DETERMINER.match(w):
            continue
        j = i + 1 + (i + 1 < len(words) and words[i + 1] == "的")
        while j < len(words) and words[j] not in STOPWORDS and words[j + 1:j + 2] not in _ASPECT:
            slot.add(words[j])
            if not _COUNTED.match(words[j]):
                break
            j += 1
    return slot


_BY_WHOM = re.compile(r"[由被](?:谁|何|哪)")


def agent_verb(question: str) -> str | None:
    """The deed of a question asking who did it (由谁**创办**, 被哪国**占去**, 由哪一个人所**设计**):
    jieba's part-of-speech tags find the first verb after the interrogative. None when that is
    one character (所灭: too loose to look for) or no word of jieba's dictionary (编进, glued by
    its HMM: the documents would write 编入).

    >>> agent_verb("中电信量子信息科技集团是由谁创办的?")
    '创办'
    """
    if not _BY_WHOM.search(question):
        return None
    words = [(w.word, w.flag) for w in _posseg().cut(question)]
    for i in range(len(words) - 2):
        if words[i][0] in ("由", "被") and words[i + 1][1] == "r":
            for word, flag in words[i + 2:]:
                if flag.startswith("v"):
                    verb = word.removeprefix("所")
                    return verb if len(verb) >= 2 and verb in _jieba().dt.FREQ else None
                if flag[:1] not in ("m", "n", "q", "u"):  # 一个, 人, 国家, 所: still the asker
                    return None
    return None


class Weights(dict[str, float]):
    """A question's words and their weights; ``slot`` holds the words that name the kind of
    answer (``answer_slot``): they count when a passage has them and never against it."""

    def __init__(self, weights: dict[str, float], slot: Collection[str] = ()) -> None:
        super().__init__(weights)
        self.slot = frozenset(slot)


def question_weights(lexicon: TermStats, tokens: Sequence[str], question: str = "") -> Weights:
    """IDF per distinct question token, frame words left out; words the collection lacks
    weigh the most (they are the rarest). The tokens in the answer slot of ``question`` are
    the weights' ``slot``."""
    unseen = lexicon.unseen_idf
    slot = answer_slot(question) if question else set()
    weights = {t: lexicon.idf(t) or unseen for t in dict.fromkeys(tokens)
               if not _framing(t) and not _ASKING.search(t)}
    return Weights(weights, slot={t for t in weights if any(t in w for w in slot)})


def _framing(token: str) -> bool:
    """A frame word, or a piece jieba glued from such characters that is no word of its own
    (时要 = 时 + 要; 之前 is a word and stays)."""
    return token in FRAME_WORDS or (token not in _jieba().dt.FREQ
                                    and all(c in FRAME_WORDS or c in STOPWORDS for c in token))


def occurs(key: str, text: str) -> bool:
    """Does the weights key occur in (lower-cased) ``text``? A key may list alternatives
    joined by ``ALTERNATIVE``."""
    return key in text or (ALTERNATIVE in key and any(a in text for a in key.split(ALTERNATIVE)))


def coverage(text: str, weights: dict[str, float]) -> float:
    """Share of the question's token weight whose tokens occur in ``text`` (0..1); tokens are
    matched as substrings, so segmentation differences don't matter."""
    text = text.lower()  # tokens are lower-cased: "AI", "5G" must match too
    slot = weights.slot if isinstance(weights, Weights) else frozenset()
    found = {t for t in weights if occurs(t, text)}
    total = sum(w for t, w in weights.items() if t in found or t not in slot)
    return sum(weights[t] for t in found) / total if total else 0.0


def longest_run(question: str, text: str) -> int:
    """Length of the longest piece of ``question`` that occurs verbatim in ``text``.

    >>> longest_run("西咸新区管委会主任是谁", "西咸新区管委会主任姜建春")
    9
    """
    best = 0
    for i in range(len(question)):
        size = best + 1
        while i + size <= len(question) and question[i:i + size] in text:
            best = size
            size += 1
    return best
