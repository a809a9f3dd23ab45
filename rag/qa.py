"""The one pipeline: question → retrieve → refuse or generate → verified citations → Answer.

The CLI, the server, the client and the evals all call ``ask`` / ``stream_ask``; nothing else
puts these steps together.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence

from rag.cite import cite, original_chars, strip_markers
from rag.errors import InputError
from rag.extract import coverage
from rag.generate import Draft, Generator, Passage, load_generator
from rag.index import Index
from rag.lexical import tokenize
from rag.normalize import is_traditional, to_simplified, to_traditional
from rag.prompts import language_of, render
from rag.retrieve import Hit, make_query, retrieve
from rag.schema import Answer, Message
from rag.schema import Passage as PassageOut

__all__ = ["MIN_COVERAGE", "MIN_DENSE", "ask", "condense", "stream_ask"]

# Refusal thresholds, calibrated on evals/gold/seeds.jsonl (README, "Refusals"): a Chinese
# question is answered when the best passage holds this share of its IDF-weighted terms; a
# question with no Chinese (cross-lingual, lexical match impossible) needs this cosine instead.
MIN_COVERAGE = 0.62
MIN_DENSE = 0.80
# Words that frame a question rather than name what it is about ("what position does X hold?"):
# an answer sentence rarely repeats them, so they weigh nothing in the coverage above.
FRAME_WORDS = frozenset(
    "职务 担任 身兼 提到 提出 表示 介绍 称为 称作 叫 名字 两篇 报道 文章 这次 本次 除了 之外 还有 "
    "一共 全称 参与 属于 同时 分别 哪里 哪儿 位置 处于 什么样 怎样 形容 为了 哪几 几个 几位 几家 "
    "几所 几次 第几 哪一 哪个 哪位 哪家 哪项 哪种 具体 主要 内容 方面 哪些方面 包括 有关 相关 "
    "分别是 是否 认为 根据 文中 文档 据 所说 说 讲 谈到 指出 强调".split()
)
# Questions that ask for a kind of value the answer sentence must contain.
ANSWER_TYPES = (
    (re.compile(r"哪一?年|何年|什么年份|which year|what year"), re.compile(r"\d{2,4}\s*年|[一二〇零○]{4}年")),
    (re.compile(r"百分之|百分比|percent|%"), re.compile(r"%|百分之")),
    (re.compile(r"何时|什么时候|哪天|哪一天|哪几天|日期|when|what date"),
     re.compile(r"\d{1,4}\s*[年月日号]|[一二三四五六七八九十]+[月日]|上午|下午|今年|去年")),
)
_ANAPHORA = ("他", "她", "它", "其", "该", "这", "那", "此", "上述", "他们", "她们", "they", "he ",
             "she ", "it ", "its ", "their ", "his ", "her ")


def _check(question: str, top_k: int, max_chars: int) -> str:
    if isinstance(question, str):  # lone surrogates (undecodable argv bytes) → U+FFFD
        question = question.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty")
    if len(question) > max_chars:
        raise InputError(f"the question is {len(question)} characters; the limit is {max_chars}")
    if not 1 <= top_k <= 50:
        raise InputError(f"top_k must be between 1 and 50, not {top_k}")
    return " ".join(question.split())


def condense(question: str, history: Sequence[Message]) -> str:
    """A standalone question for retrieval: a follow-up that leans on an earlier turn
    ("那他的职务呢?") is prefixed with the last user question."""
    previous = [m.content for m in history if m.role == "user" and m.content.strip()]
    if not previous:
        return question
    q = f" {question.lower()}"
    if q.startswith((" 那", " 还有", " 那么", " and ", " what about")) or any(w in q for w in _ANAPHORA):
        return f"{previous[-1].strip()} {question}"
    return question


def _weights(index: Index, tokens: list[str]) -> dict[str, float]:
    """IDF per distinct question token; words the collection lacks weigh the most."""
    unseen = math.log(1 + (len(index) + 0.5) / 0.5)
    return {t: index.lexicon.idf(t) or unseen for t in dict.fromkeys(tokens) if t not in FRAME_WORDS}


def _supported(question: str, hits: list[Hit], weights: dict[str, float], refuse_below: float | None) -> bool:
    """Is there enough evidence to answer? (Else refuse without generating.)"""
    if not hits:
        return False
    texts = [h.chunk.text for h in hits]
    for asks, needs in ANSWER_TYPES:
        if asks.search(question.lower()) and not any(needs.search(t) for t in texts):
            return False
    if any("\u3400" <= ch <= "\u9fff" for ch in question):
        best = max(coverage(t, weights) for t in texts)
        return best >= (MIN_COVERAGE if refuse_below is None else refuse_below)
    return max(h.dense for h in hits) >= MIN_DENSE


class _Run:
    """One question's state while it goes through the pipeline."""

    def __init__(self, index: Index, question: str, top_k: int, history: Sequence[Message],
                 generator: Generator | None, max_chars: int, refuse_below: float | None) -> None:
        self.t0 = time.perf_counter()
        self.index = index
        self.question = _check(question, top_k, max_chars)
        self.lang = language_of(self.question)
        self.standalone = condense(self.question, history)
        self.generator = generator or load_generator("extractive")
        self.normalized = to_simplified(self.question)
        query = make_query(index, self.normalized if self.standalone == self.question
                           else to_simplified(self.standalone))
        self.hits = retrieve(index, query, top_k)
        self.weights = _weights(index, tokenize(self.normalized) or query.tokens)
        self.passages = [Passage(i + 1, h, index.normalized(h.chunk.doc_id))
                         for i, h in enumerate(self.hits)]
        self.timings = {"retrieve": (time.perf_counter() - self.t0) * 1000}
        self.supported = _supported(self.question, self.hits, self.weights, refuse_below)

    def script(self, text: str) -> str:
        return to_traditional(text) if self.lang == "zh-Hant" else text

    def render(self, draft: Draft, texts: dict[str, str]) -> list[str]:
        """The answer's pieces in the asker's script. Quoted sentences use the document's own
        characters for Traditional askers (OpenCC s2t guesses, e.g. 咸→鹹; the source knows)."""
        if not draft.quoted or self.lang != "zh-Hant":
            return [self.script(draft.text)]
        pieces = []
        for ev in draft.evidence:
            p = self.passages[ev.n - 1]
            own = original_chars(p, ev, texts[p.hit.chunk.doc_id])
            pieces.append(f"{own if is_traditional(own) else to_traditional(own)}[{ev.n}]")
        return pieces

    def texts(self) -> dict[str, str]:
        return {h.chunk.doc_id: self.index.text(h.chunk.doc_id) for h in self.hits}

    def finish(self, draft: Draft | None) -> Answer:
        texts = self.texts()
        passages = [PassageOut(doc_id=h.chunk.doc_id, chunk_id=h.chunk.chunk_id,
                               text=texts[h.chunk.doc_id][h.chunk.start:h.chunk.end],
                               score=round(h.score, 4), start=h.chunk.start, end=h.chunk.end)
                    for h in self.hits]
        citations = cite(draft.evidence, self.passages, texts) if draft and not draft.refused else []
        short = None
        if draft and draft.short_answer and citations:
            ev = draft.short_answer
            if any(c.n == ev.n for c in citations):
                p = self.passages[ev.n - 1]
                short = original_chars(p, ev, texts[p.hit.chunk.doc_id])
                short = to_simplified(short) if self.lang != "zh-Hant" else short
        refused = draft is None or not citations
        answer = (render("refusal", self.lang) if draft is None or refused
                  else strip_markers("".join(self.render(draft, texts)), {c.n for c in citations}))
        self.timings["total"] = (time.perf_counter() - self.t0) * 1000
        if "generate" not in self.timings:
            self.timings["generate"] = 0.0
        return Answer(question=self.question, answer=answer, short_answer=None if refused else short,
                      refused=refused, citations=citations, passages=passages,
                      timings_ms={k: round(v, 1) for k, v in self.timings.items()},
                      generator=self.generator.name,
                      standalone_question=self.standalone if self.standalone != self.question else None)


def ask(index: Index, question: str, *, top_k: int = 5, history: Sequence[Message] = (),
        generator: Generator | None = None, max_question_chars: int = 2000,
        refuse_below: float | None = None) -> Answer:
    """Answer ``question`` from ``index`` with verified citations, or refuse."""
    run = _Run(index, question, top_k, history, generator, max_question_chars, refuse_below)
    if not run.supported:
        return run.finish(None)
    t = time.perf_counter()
    draft = run.generator.generate(run.normalized, run.passages, idf=run.weights)
    run.timings["generate"] = (time.perf_counter() - t) * 1000
    return run.finish(draft)


def stream_ask(index: Index, question: str, *, top_k: int = 5, history: Sequence[Message] = (),
               generator: Generator | None = None, max_question_chars: int = 2000,
               refuse_below: float | None = None) -> Iterator[str | Answer]:
    """Text deltas in the asker's script, then the final ``Answer``."""
    run = _Run(index, question, top_k, history, generator, max_question_chars, refuse_below)
    draft: Draft | None = None
    if run.supported:
        t = time.perf_counter()
        for item in run.generator.stream(run.normalized, run.passages, idf=run.weights):
            if isinstance(item, Draft):
                draft = item
                if draft.quoted:
                    yield from run.render(draft, run.texts())
            else:
                yield run.script(item)
        run.timings["generate"] = (time.perf_counter() - t) * 1000
    answer = run.finish(draft)
    if answer.refused:
        yield answer.answer
    yield answer
