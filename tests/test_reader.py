"""The reader (rag/models/reader.py), its pruned vocabulary and its training data."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evals import reader_data
from rag.models import e5, reader, vocab
from rag.text.normalize import to_simplified

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
needs_benchmarks = pytest.mark.skipif(not (BENCHMARKS / "drcd_dev.json").exists(),
                                      reason="no ../shared/benchmarks")

SAMPLES = [
    "全形標點：「你好」，（１２３）！？ＡＢＣ……省略号…和——破折号",
    "1998年3月15日，GDP增長了7.8%。℃ ① Ⅱ ★ ■ ×÷±",
    "Mixed 中英文 text with numbers 12,345.67 and URLs https://example.com/a?b=c",
    "路德维希·普朗特（Ludwig Prandtl）生于慕尼黑；哥廷根（Göttingen）。アニメ的名字",
    "literal specials <unk> <s> </s> <pad>  and   spaces",
]


def benchmark_texts(limit: int) -> list[str]:
    texts = []
    for name in ("drcd_dev.json", "cmrc2018_dev.json"):
        data = json.loads((BENCHMARKS / name).read_text("utf-8"))["data"]
        paragraphs = [p for article in data for p in article["paragraphs"]][:limit]
        texts += [p["context"] for p in paragraphs] + [q["question"] for p in paragraphs for q in p["qas"]]
    return texts


def seed_texts() -> list[str]:
    paths = sorted((ROOT / "seeds").glob("*.txt"))
    return [line for path in paths for line in path.read_text("utf-8").splitlines() if line.strip()]


def assert_lossless(texts: list[str]) -> None:
    keep = vocab.keep_ids()
    normed = [e5.normalize(t) for t in texts]
    full = e5.load_tokenizer().encode_batch(normed, add_special_tokens=False)
    pruned = vocab.pruned_tokenizer().encode_batch(normed, add_special_tokens=False)
    for text, a, b in zip(texts, full, pruned, strict=True):
        assert keep[b.ids].tolist() == a.ids, text[:60]


def test_pruned_vocabulary_is_lossless_on_chinese_and_english_samples() -> None:
    assert_lossless(SAMPLES + seed_texts() + [to_simplified(t) for t in SAMPLES])


@needs_benchmarks
def test_pruned_vocabulary_is_lossless_on_benchmark_texts() -> None:
    texts = benchmark_texts(60)
    assert_lossless(texts + [to_simplified(t) for t in texts])


def test_pruned_vocabulary_is_smaller_and_keeps_specials() -> None:
    keep = vocab.keep_ids()
    assert 100_000 < len(keep) < 150_000  # 137,639 of 250,037
    assert np.all(np.diff(keep) > 0)
    assert vocab.specials(keep) == {"bos": 0, "pad": 1, "eos": 2, "unk": 3}


def test_other_scripts_fall_back_to_characters_not_unknowns() -> None:
    enc = reader.encode_texts(["Привет"])[0]
    assert vocab.specials(vocab.keep_ids())["unk"] not in enc.ids


@pytest.mark.parametrize("text", ["在欧洲……梵语研究。", "全形ＡＢＣ１２３，（括号）…end", "a  b\tc\u200bd",
                                  "😀x𠀀y"])
def test_token_offsets_index_the_given_text(text: str) -> None:
    enc = reader.encode_texts([text])[0]
    assert all(0 <= a <= b <= len(text) for a, b in zip(enc.starts, enc.ends, strict=True))
    assert enc.starts == sorted(enc.starts)
    covered = "".join(text[a:b] for a, b in zip(enc.starts, enc.ends, strict=True))
    # every visible character is in exactly one token (multi-character expansions share one origin)
    visible = [ch for ch in text if not ch.isspace() and e5.normalize(ch).strip()]
    shown = [ch for ch in dict.fromkeys(covered) if not ch.isspace() and e5.normalize(ch).strip()]
    assert shown == list(dict.fromkeys(visible))


class SpanModel:
    """A stand-in network: start logit 10 on token ``first``, end logit 10 on token ``last``."""

    def __init__(self, first: int, last: int) -> None:
        import torch

        self.first, self.last = first, last
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self) -> Any:
        return iter([self.weight])

    def __call__(self, ids: Any, mask: Any) -> tuple[Any, Any]:
        return (ids == self.first).float() * 10, (ids == self.last).float() * 10


@pytest.mark.parametrize(("passage", "answer"), [
    ("据报道……该公司总营收为１２３亿元，同比增长。", "１２３亿元"),
    ("前言…… 作者是 John Smith 先生…", "John Smith"),
])
def test_reading_spans_are_exact_slices_of_the_given_passage(passage: str, answer: str) -> None:
    enc = reader.encode_texts([passage])[0]
    at = passage.index(answer)
    spans = enumerate(zip(enc.starts, enc.ends, strict=True))
    tokens = [i for i, (a, b) in spans if b > at and a < at + len(answer)]
    model = SpanModel(enc.ids[tokens[0]], enc.ids[tokens[-1]])
    (reading,) = reader.read("问题", [passage], model)  # type: ignore[arg-type]
    assert passage[reading.start:reading.end] == reading.text == answer
    assert reading.margin > 0 and reading.answerable > 0.5


@pytest.mark.parametrize(("passage", "first", "last", "answer"), [
    ("总营收为123亿元。同比增长了8%，创新高。", "123", "，", "123"),  # never across a sentence end
    ("韩愈著《原道》，提倡儒学。", "《", "》，", "《原道》"),  # a trailing comma trimmed
    ("他最著名的是「吉祥兄弟」。后来", "「", "」。", "「吉祥兄弟」"),  # a closing quote kept
])
def test_reading_spans_stay_in_one_sentence(passage: str, first: str, last: str, answer: str) -> None:
    enc = reader.encode_texts([passage])[0]
    token = {passage[a:b]: i for i, a, b in zip(enc.ids, enc.starts, enc.ends, strict=True)}
    (reading,) = reader.read("问题", [passage], SpanModel(token[first], token[last]))  # type: ignore[arg-type]
    assert reading.text == answer == passage[reading.start:reading.end]
    assert reading.margin == pytest.approx(20)  # answerability stays the model's best span, any span


@pytest.mark.parametrize(("query", "read_as"), [
    ("某会议的举办地", "某会议的举办地?"), ("西咸新区党工委书记 ", "西咸新区党工委书记?"),
    ("谁发现了印欧语系？", "谁发现了印欧语系？"), ("Who chaired it.", "Who chaired it."), ("", ""),
])
def test_a_query_without_an_end_mark_is_read_asked(query: str, read_as: str) -> None:
    assert reader.asked(query) == read_as


class QuestionSeen(SpanModel):
    """A stand-in network that keeps the tokens of each window it reads."""

    def __init__(self) -> None:
        super().__init__(-1, -1)
        self.seen: list[list[int]] = []

    def __call__(self, ids: Any, mask: Any) -> tuple[Any, Any]:
        self.seen += [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        return super().__call__(ids, mask)


def test_read_reads_a_keyword_query_as_a_question() -> None:
    plain, marked = QuestionSeen(), QuestionSeen()
    reader.read("某会议的举办地", ["会议在福州举行。"], plain)  # type: ignore[arg-type]
    reader.read("某会议的举办地?", ["会议在福州举行。"], marked)  # type: ignore[arg-type]
    assert plain.seen == marked.seen
    question = reader.encode_texts(["某会议的举办地?"])[0].ids
    assert plain.seen[0][1:1 + len(question)] == question  # <s> question </s></s> passage </s>
    assert question != reader.encode_texts(["某会议的举办地"])[0].ids


def test_windows_cover_a_long_passage_with_overlap() -> None:
    passage = list(range(10, 1010))
    windows = reader.make_windows([5] * 20, passage, 0, max_len=256, stride=128)
    assert all(len(w.ids) <= 256 for w in windows)
    assert windows[0].first == 0 and windows[-1].last == len(passage)
    assert all(b.first < a.last for a, b in itertools.pairwise(windows))  # overlapping
    for w in windows:
        assert w.ids[w.offset:w.offset + w.last - w.first] == passage[w.first:w.last]
    assert len(reader.make_windows([5], [7, 8], 0)) == 1


def test_split_by_article_never_overlaps() -> None:
    keys = [f"drcd:{i}" for i in range(100)] + [f"cmrc:DEV_{i}" for i in range(50)]
    split = reader_data.split_articles(keys)
    parts = [set(v) for v in split.values()]
    assert sum(map(len, parts)) == len(keys) == len(set().union(*parts))
    assert len(split["validation"]) == 30 and split == reader_data.split_articles(keys)


@needs_benchmarks
def test_committed_split_matches_the_data() -> None:
    saved = json.loads(reader_data.SPLIT_FILE.read_text("utf-8"))
    split = reader_data.split_articles(list(reader_data.load_articles()))
    assert {k: saved[k] for k in split} == split


@pytest.mark.parametrize(("question", "keywords"), [
    ("某公司2021财年总营收是多少?", "某公司2021财年总营收"),
    ("陆特和汉斯雷顿开创了哪一地区对梵语的学术研究?", "陆特和汉斯雷顿开创了地区对梵语的学术研究"),
    ("谁发现了维京群岛？", "发现了维京群岛"),
    ("该事故死亡人数是几人呢？", "该事故死亡人数人"),
    ("会议何时在哪里举办", "会议在举办"),
])
def test_keyword_form_drops_question_words(question: str, keywords: str) -> None:
    assert reader_data.keyword_form(question) == keywords


def test_answers_are_placed_in_normalized_space() -> None:
    paragraph = {"context": "在歐洲，梵語的學術研究…由德國學者開創。",
                 "qas": [{"id": "q", "answers": [{"text": "德國學者", "answer_start": 13}]}]}
    ex = reader_data.paragraph_examples("q", "drcd:1", "谁开创?", paragraph, paragraph["qas"][0])
    assert ex is not None and ex.start is not None
    assert ex.context[ex.start:ex.end] == "德国学者" == ex.answers[0]


@pytest.mark.integration
@pytest.mark.skipif(not reader.WEIGHTS.exists(), reason="no shipped reader weights")
def test_shipped_reader_answers_a_simple_question() -> None:
    model = reader.load_reader()
    passages = ["天气预报说明天有雨，气温在十度左右。",
                "梵语的学术研究在欧洲由德国学者开创。后来威廉·琼斯发现了印欧语系。"]
    readings = reader.read("谁发现了印欧语系?", passages, model)
    best = max(readings, key=lambda r: r.margin)
    assert best.passage == 1 and "威廉·琼斯" in best.text
    assert passages[1][best.start:best.end] == best.text


@pytest.mark.skipif(not reader.WEIGHTS.exists(), reason="no shipped reader weights")
def test_shipped_weights_match_their_recorded_checksum() -> None:
    import hashlib

    info = json.loads(reader.WEIGHTS.with_suffix(".json").read_text("utf-8"))
    assert hashlib.sha256(reader.WEIGHTS.read_bytes()).hexdigest() == info["sha256"]
    assert info["bytes"] == reader.WEIGHTS.stat().st_size < 40_000_000
