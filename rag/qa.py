"""The one pipeline: question → retrieve → refuse or generate → verified citations → Answer.

The CLI, the server, the client and the evals all call ``ask`` / ``stream_ask``; nothing else
puts these steps together.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from rag.answer.cite import cite, original_chars, strip_markers
from rag.answer.extract import ANSWER_TYPES, Extractive, from_span, lead
from rag.answer.generate import Draft, Evidence, Generator, Passage, load_generator
from rag.answer.prompts import language_of, render
from rag.answer.reading import Judge, Readings, Verdict
from rag.answer.retrieve import Hit, make_query, retrieve
from rag.errors import InputError, RagError
from rag.loaders import where
from rag.schema import Answer, Message
from rag.schema import Passage as PassageOut
from rag.store.backend import SearchBackend
from rag.store.filters import Filter
from rag.text.injection import flag_passage, strip_flagged
from rag.text.lexical import TermStats, agent_verb, coverage, question_weights, tokenize
from rag.text.normalize import has_cjk, is_traditional, to_simplified, to_traditional

__all__ = ["MIN_COVERAGE", "MIN_DENSE", "ask", "condense", "stream_ask"]

log = logging.getLogger("wenda.qa")

# Refusal thresholds, calibrated on evals/gold/seeds.jsonl (README, "Refusals"): a Chinese
# question, or an English one bridged to Chinese words (rag.text.crosslingual), is answered when the
# best passage holds this share of its IDF-weighted terms; any other question with no Chinese
# (lexical match impossible) needs this cosine instead.
MIN_COVERAGE = 0.62
MIN_DENSE = 0.80
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


def _check_history(history: Sequence[Message], max_chars: int) -> None:
    """History is text we tokenize too: it is bounded like the question."""
    for m in history:
        if len(m.content) > max_chars:
            raise InputError(f"a history message is {len(m.content)} characters; the limit is {max_chars}")


def condense(question: str, history: Sequence[Message], generator: Generator | None = None) -> str:
    """A standalone question for retrieval. A generator with a ``rewrite`` method (the LLMs)
    rewrites the follow-up ("那他的职务呢?" → "杨仁华的职务是什么?"); otherwise, or when that
    fails, a follow-up that leans on an earlier turn is prefixed with the last user question."""
    previous = [m.content for m in history if m.role == "user" and m.content.strip()]
    if not previous:
        return question
    q = f" {question.lower()}"
    follows_up = (q.startswith((" 那", " 还有", " 那么", " and ", " what about"))
                  or any(w in q for w in _ANAPHORA))
    rewrite = getattr(generator, "rewrite", None)
    if rewrite is not None:
        try:
            rewritten = rewrite(question, history)
        except RagError as exc:
            log.warning("follow-up rewrite failed (%s); using the heuristic", exc)
            rewritten = None
        same = rewritten and to_simplified(rewritten).rstrip("?？ ") == to_simplified(question).rstrip("?？ ")
        if rewritten and not (same and follows_up):  # a follow-up left as it was: the heuristic
            return " ".join(str(rewritten).split())
    return f"{previous[-1].strip()} {question}" if follows_up else question


_DIGIT = {c: str(i) for i, c in enumerate("一二三四五六七八九", start=1)}
_DIGIT |= {d: c for c, d in _DIGIT.items()}  # 一 ↔ 1
_ORDINAL = re.compile(r"(?:首|第([一二三四五六七八九十百零〇两]+|\d+))([届次批期轮])")


def _ordinals(question: str) -> list[re.Pattern[str]]:
    """The ordinals a question names (首届, 第十次), each as the forms a passage may write it
    in: "the first meeting" is not answered by a passage about the ninth."""
    out = []
    for m in _ORDINAL.finditer(question):
        num, unit = m.group(1) or "一", m.group(2)
        forms = {f"第{num}", f"第{_DIGIT.get(num, num)}"} | ({"首"} if num in ("一", "1") else set())
        out.append(re.compile(f"(?:{'|'.join(sorted(forms))}){unit}"))
    return out


def _checked(question: str, texts: list[str], lexicon: TermStats) -> bool:
    """Do the passages have what the question's form demands? (A year for 哪一年, the ordinal
    it names, the deed it asks who did.) A refusal here is specific evidence that the documents
    do not say: no reader overrules it."""
    if not texts:
        return False
    for asks, needs in ANSWER_TYPES:
        if asks.search(question.lower()) and not any(needs.search(t) for t in texts):
            return False
    simplified = to_simplified(question)
    if not all(any(o.search(t) for t in texts) for o in _ordinals(simplified)):
        return False
    # who did a deed the documents never mention (由谁创办, where they only name the company
    # among those who signed): they do not say. Only the collection is asked, not the passages:
    # those often word the deed otherwise (获胜 → 击败), DRCD and CMRC lost 14 right answers to
    # saving 4 wrong ones when the passages had to repeat it.
    return not ((verb := agent_verb(simplified)) and verb not in lexicon)


def _covered(question: str, hits: list[Hit], texts: list[str], weights: dict[str, float],
             refuse_below: float | None, *, bridged: bool = False) -> bool:
    """Does a passage hold enough of the question's words? (Else refuse without generating.)"""
    if has_cjk(question) or bridged:
        best = max(coverage(t, weights) for t in texts)
        return best >= (MIN_COVERAGE if refuse_below is None else refuse_below)
    return max(h.dense for h in hits) >= MIN_DENSE


def _inside(v: Verdict, draft: Draft) -> bool:
    """Does the reader's span lie in a sentence the draft quotes?"""
    return any(e.n == v.n and e.nstart <= v.nstart and v.nend <= e.nend for e in draft.evidence)


@dataclass(frozen=True)
class _Options:
    top_k: int = 5
    history: Sequence[Message] = ()
    generator: Generator | None = None
    max_question_chars: int = 2000
    refuse_below: float | None = None
    use_dense: bool = True
    use_lexical: bool = True
    rescore: bool = True
    where: Filter | None = None
    reader: Judge | None = None


class _Run:
    """One question's state while it goes through the pipeline."""

    def __init__(self, index: SearchBackend, question: str, opts: _Options) -> None:
        self.t0 = time.perf_counter()
        self.index = index
        top_k, history, generator = opts.top_k, opts.history, opts.generator
        self.question = _check(question, top_k, opts.max_question_chars)
        _check_history(history, opts.max_question_chars)
        self.lang = language_of(self.question)
        self.generator = generator or load_generator("extractive")
        self.standalone = condense(self.question, history, self.generator)
        self.normalized = to_simplified(self.question)
        # an LLM answers the standalone question (it does not see the history)
        self.asked = (to_simplified(self.standalone) if hasattr(self.generator, "rewrite")
                      else self.normalized)
        query = make_query(index, self.normalized if self.standalone == self.question
                           else to_simplified(self.standalone), opts.where)
        self.hits = retrieve(index, query, top_k, use_dense=opts.use_dense,
                             use_lexical=opts.use_lexical, rescore=opts.rescore)
        # the asked question's own words weigh (not the history a follow-up was expanded with),
        # unless it has none of its own ("那他的职务呢?")
        own = (question_weights(index.lexicon, tokenize(self.normalized), self.normalized)
               if self.standalone != self.question and not query.bridged else None)
        self.weights = own or query.weights
        self.passages = [Passage(i + 1, h, index.normalized(h.chunk.doc_id))
                         for i, h in enumerate(self.hits)]
        self.timings = {"retrieve": (time.perf_counter() - self.t0) * 1000}
        gate = self.gate = opts.reader.gate if opts.reader else "off"
        texts = [strip_flagged(h.chunk.text) for h in self.hits]  # an injected sentence is no evidence
        self.checked = _checked(self.question, texts, index.lexicon)
        self.supported = gate == "reader" or (self.checked and _covered(
            self.question, self.hits, texts, self.weights, opts.refuse_below, bridged=query.bridged))
        self.reader = opts.reader
        self.readings = Readings(opts.reader, self.normalized) if opts.reader else None
        self.verdict = None
        # the reader overrules a refusal for too few shared words, in Chinese (its training)
        if gate == "confident" and not self.supported and self.checked and self.lang != "en":
            assert opts.reader is not None
            self.verdict = self.read(self.top())
            self.supported = opts.reader.overrules(self.verdict)  # then draft() leads with its span
        elif opts.reader and self.supported and gate not in ("short", "confident"):
            # ("short" and "confident" read after the draft)
            self.verdict = self.read(self.top())
            if gate in ("reader", "both"):
                self.supported = bool(self.verdict and self.verdict.answerable)
        elif gate == "confident" and self.supported and self.lang != "en" and not isinstance(
                self.generator, Extractive):
            # an LLM: the reader judges before any text is generated, and offers its span
            assert opts.reader is not None
            self.verdict = self.read(self.top())
            self.supported = not opts.reader.vetoes(self.verdict)

    def top(self) -> list[Passage]:
        """The passages the reader reads for the best answer."""
        assert self.reader is not None
        return self.passages[:self.reader.depth]

    def read(self, passages: list[Passage]) -> Verdict | None:
        """The reader's best verdict over ``passages``; each passage is read once per question."""
        assert self.readings is not None
        t = time.perf_counter()
        verdict = self.readings.best(passages)
        self.timings["read"] = self.timings.get("read", 0.0) + (time.perf_counter() - t) * 1000
        return verdict

    def draft(self) -> Draft:
        """The reader's span and its sentence when it found one (extractive answers), else
        the generator's draft; with the "short" and "confident" gates, the draft with the reader's
        short answer."""
        t = time.perf_counter()
        draft = None
        extractive = isinstance(self.generator, Extractive)
        v = self.verdict
        if v and v.answerable and extractive:
            draft = from_span(self.passages, Evidence(v.n, v.nstart, v.nend))
        if draft is None:
            draft = self.generator.generate(self.asked, self.offered(), idf=self.weights)
            if self.gate in ("short", "confident") and extractive and draft.evidence:
                draft = self._shorten(draft)
        self.timings["generate"] = (time.perf_counter() - t) * 1000
        return draft

    def _shorten(self, draft: Draft) -> Draft:
        """The reader's span as the short answer, when it lies in a sentence the answer quotes.
        With the "confident" gate (Chinese only), where the reader does not find its answer in
        what the answer quotes, it reads the top passages too: when it finds the answer in a
        sentence the extractive answer does not quote, that sentence leads (``lead``); and when it
        is sure the one passage the answer quotes does not answer, the extractive answer goes
        (refused, unless the reader is sure of another passage)."""
        assert self.reader is not None
        quoted = self.quoted(draft)
        v = self.read(quoted)
        chinese = self.lang != "en"
        # it reads one passage at a time: an answer drawn from two is not its to refuse
        vetoed = chinese and len(quoted) == 1 and self.reader.vetoes(v)
        agrees = v is not None and v.answerable and _inside(v, draft)  # then nothing more to read
        if self.gate == "confident" and chinese and not agrees:
            top = self.read(self.top())
            if (top and top.answerable and not _inside(top, draft)
                    and (not vetoed or self.reader.overrules(top))):
                first = from_span(self.passages, Evidence(top.n, top.nstart, top.nend))
                if first is not None:
                    return first if vetoed else lead(first, draft, self.passages)
        if vetoed:
            return Draft("", refused=True)
        if v and v.answerable and _inside(v, draft):
            draft.short_answer = Evidence(v.n, v.nstart, v.nend)
        return draft

    def offered(self) -> list[Passage]:
        """The passages as the generator gets them: the one the reader found its answer in
        carries its span (``Passage.found``: an LLM's prompt offers it)."""
        v = self.verdict
        if not (v and v.answerable):
            return self.passages
        p = self.passages[v.n - 1]
        span = p.doc.text[v.nstart:v.nend]
        return [replace(q, found=span) if q is p else q for q in self.passages]

    def quoted(self, draft: Draft) -> list[Passage]:
        """The passages a draft quotes, each once, in the order it quotes them."""
        return [self.passages[n - 1] for n in dict.fromkeys(e.n for e in draft.evidence)]

    def first_text(self) -> None:
        """Note when the asker got the first piece of the answer."""
        self.timings.setdefault("first_token", (time.perf_counter() - self.t0) * 1000)

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

    def where(self, doc_id: str, offset: int) -> dict[str, object]:
        """Page and location of a character, for documents with pages (PDF, slides, sheets)."""
        stored = self.index.stored(doc_id)
        return where(stored.pages, offset, stored.media_type)

    def _tags(self, doc_id: str) -> list[str]:
        doc = self.index.document_tags(doc_id)
        return list(doc.tags) if doc else []

    def finish(self, draft: Draft | None) -> Answer:
        texts = self.texts()
        passages = [PassageOut(doc_id=h.chunk.doc_id, chunk_id=h.chunk.chunk_id,
                               text=texts[h.chunk.doc_id][h.chunk.start:h.chunk.end],
                               score=round(h.score, 4), start=h.chunk.start, end=h.chunk.end,
                               flagged=flag_passage(h.chunk.text))
                    .model_copy(update=self.where(h.chunk.doc_id, h.chunk.start))
                    for h in self.hits]
        citations = ([c.model_copy(update={**self.where(c.doc_id, c.start),
                                           "title": self.index.stored(c.doc_id).title or None,
                                           "tags": self._tags(c.doc_id),
                                           "flagged": flag_passage(self.passages[c.n - 1].text)})
                      for c in cite(draft.evidence, self.passages, texts)]
                     if draft and not draft.refused else [])
        short = None
        if draft and draft.short_answer and citations:
            ev = draft.short_answer
            if any(c.n == ev.n for c in citations):
                p = self.passages[ev.n - 1]
                short = original_chars(p, ev, texts[p.hit.chunk.doc_id])
                short = to_simplified(short) if self.lang != "zh-Hant" else short
        refused = draft is None or draft.refused or not citations
        answer = (render("refusal", self.lang) if draft is None or refused
                  else strip_markers("".join(self.render(draft, texts)), {c.n for c in citations}))
        self.timings["total"] = (time.perf_counter() - self.t0) * 1000
        if "generate" not in self.timings:
            self.timings["generate"] = 0.0
        if draft and "first_token" in draft.timings and "first_token" not in self.timings:
            self.timings["first_token"] = self.timings["retrieve"] + draft.timings["first_token"]
        self.timings.setdefault("first_token", self.timings["total"])
        grounding = draft if draft is not None and draft.sentences is not None else None
        return Answer(question=self.question, answer=answer, short_answer=None if refused else short,
                      refused=refused, citations=citations, passages=passages,
                      timings_ms={k: round(v, 1) for k, v in self.timings.items()},
                      generator=self.generator.name,
                      standalone_question=self.standalone if self.standalone != self.question else None,
                      sentences=grounding.sentences if grounding else None,
                      unsupported_sentences=list(grounding.unsupported) if grounding else [],
                      fallback=draft.fallback if draft else None)


def ask(index: SearchBackend, question: str, *, top_k: int = 5, history: Sequence[Message] = (),
        generator: Generator | None = None, max_question_chars: int = 2000,
        refuse_below: float | None = None, use_dense: bool = True, use_lexical: bool = True,
        rescore: bool = True, where: Filter | None = None, reader: Judge | None = None) -> Answer:
    """Answer ``question`` from ``index`` with verified citations, or refuse.

    ``where`` limits the documents it may draw on; ``use_dense`` / ``use_lexical`` / ``rescore``
    switch retrieval paths off for comparisons; ``refuse_below`` overrides the calibrated
    refusal threshold."""
    run = _Run(index, question, _Options(top_k, history, generator, max_question_chars,
                                         refuse_below, use_dense, use_lexical, rescore, where,
                                         reader))
    if not run.supported:
        return run.finish(None)
    return run.finish(run.draft())


def stream_ask(index: SearchBackend, question: str, *, top_k: int = 5, history: Sequence[Message] = (),
               generator: Generator | None = None, max_question_chars: int = 2000,
               refuse_below: float | None = None, use_dense: bool = True, use_lexical: bool = True,
               rescore: bool = True, where: Filter | None = None, reader: Judge | None = None
               ) -> Iterator[str | Answer]:
    """Text deltas in the asker's script, then the final ``Answer``."""
    run = _Run(index, question, _Options(top_k, history, generator, max_question_chars,
                                         refuse_below, use_dense, use_lexical, rescore, where,
                                         reader))
    draft: Draft | None = None
    if run.supported and isinstance(run.generator, Extractive):  # quoted whole: nothing to stream
        draft = run.draft()
        if draft.quoted:
            run.first_text()
            yield from run.render(draft, run.texts())
    elif run.supported:
        t = time.perf_counter()
        for item in run.generator.stream(run.asked, run.offered(), idf=run.weights):
            if isinstance(item, Draft):
                draft = item
                if draft.quoted:
                    run.first_text()
                    yield from run.render(draft, run.texts())
            elif item:
                run.first_text()
                yield run.script(item)
        run.timings["generate"] = (time.perf_counter() - t) * 1000
    answer = run.finish(draft)
    if answer.refused:
        yield answer.answer
    yield answer
