"""Reader training and validation examples from the DRCD and CMRC 2018 dev sets (SQuAD layout).

Split by article with a fixed seed (evals/reader_split.json records it): 20% validation, never
trained or tuned on; of the rest, 10% "tune" (the no-answer threshold is picked there) and 90%
train. Each question gives: (a) the gold paragraph with its answer; (b) a BM25-retrieved, on-topic
paragraph of the same split that is not gold and does not hold the answer, as a no-answer example;
(c) its keyword form (question words dropped) with the same answer: for a share of the training
questions, and for every validation and tune question. Text is normalized to Simplified with
``rag.text.normalize.normalize`` as the pipeline does, and answers are placed in normalized space.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.text.normalize import normalize, to_simplified

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT.parent / "shared" / "benchmarks"
SETS = {"drcd": "drcd_dev.json", "cmrc": "cmrc2018_dev.json"}
SPLIT_FILE = Path(__file__).with_name("reader_split.json")
WORK = ROOT / ".reader"  # caches and checkpoints (gitignored)
SEED = 13
VALIDATION, TUNE = 0.2, 0.1

# Question words and particles: dropped, they leave the keyword query a search box would get.
# A counter after 哪/几 goes too ("哪一门" -> ""), but time units stay: they name the slot ("哪一年" -> "年").
_ASKING = re.compile(r"(?:是|为)?(?:为什么|什么|哪里|哪儿|哪些"
                     r"|(?:哪|几)一?[个位家种门条项场次所部本件名座届首支]?"
                     r"|谁|多少|何时|如何|怎样|怎么|是否)")
_TRAILING = re.compile(r"[吗呢?？。\s]+$")


@dataclass(frozen=True)
class Example:
    qid: str
    article: str  # "<set>:<article id>"
    question: str
    context: str  # normalized (Simplified)
    start: int | None  # answer span in ``context``; None: no answer
    end: int | None
    answers: list[str]  # gold answers, normalized (also kept on no-answer examples, for reference)
    form: str  # "question" | "keyword"


def keyword_form(question: str) -> str:
    """'某公司2021财年总营收是多少?' -> '某公司2021财年总营收': question words and particles dropped."""
    return _TRAILING.sub("", _ASKING.sub("", question)).strip()


def keyword_variant(question: str) -> str | None:
    """The question's keyword form; None where dropping question words leaves nothing or changes nothing."""
    keyword = keyword_form(question)
    return keyword if keyword and keyword != question else None


def load_articles(directory: Path = BENCHMARKS) -> dict[str, list[dict[str, Any]]]:
    """'<set>:<article id>' -> its paragraphs (SQuAD layout), both sets."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, file in SETS.items():
        for article in json.loads((directory / file).read_text(encoding="utf-8"))["data"]:
            out[f"{name}:{article['id']}"] = article["paragraphs"]
    return out


def split_articles(keys: list[str], seed: int = SEED) -> dict[str, list[str]]:
    """Per set, shuffled with ``seed``: the first 20% validation, the next 10% of the rest tune."""
    split: dict[str, list[str]] = {"train": [], "tune": [], "validation": []}
    for name in SETS:
        ids = sorted(k for k in keys if k.startswith(name + ":"))
        random.Random(f"{seed}:{name}").shuffle(ids)
        n_val = round(len(ids) * VALIDATION)
        n_tune = round((len(ids) - n_val) * TUNE)
        split["validation"] += sorted(ids[:n_val])
        split["tune"] += sorted(ids[n_val:n_val + n_tune])
        split["train"] += sorted(ids[n_val + n_tune:])
    return split


def write_split(split: dict[str, list[str]], path: Path = SPLIT_FILE) -> None:
    text = json.dumps({"seed": SEED, **split}, ensure_ascii=False, indent=0)
    path.write_text(text + "\n", encoding="utf-8")


def place_answer(context: str, answer: dict[str, Any]) -> tuple[int, int] | None:
    """The answer's span in ``normalize(context).text``, or None if normalization dropped it."""
    norm = normalize(context)
    a, b = answer["answer_start"], answer["answer_start"] + len(answer["text"])
    inside = [i for i, o in enumerate(norm.origin) if a <= o < b]
    return (inside[0], inside[-1] + 1) if inside else None


def paragraph_examples(qid: str, article: str, question: str, paragraph: dict[str, Any],
                       qa: dict[str, Any]) -> Example | None:
    context = normalize(paragraph["context"]).text
    spans = [s for ans in qa.get("answers", []) if (s := place_answer(paragraph["context"], ans))]
    if not spans or not question:
        return None
    golds = sorted({context[a:b] for a, b in spans})
    a, b = spans[0]
    return Example(qid, article, question, context, a, b, golds, "question")


def negative_for(example: Example, pool: list[tuple[str, str]], lexicon: Any,
                 gold_context: str) -> Example | None:
    """The best-ranked paragraph of the pool that is neither gold nor holds a gold answer."""
    from rag.text.lexical import tokenize

    for row, _ in lexicon.search(tokenize(example.question), 10):
        article, text = pool[row]
        if text != gold_context and not any(g in text for g in example.answers):
            return Example(example.qid + ":neg", article, example.question, text, None, None,
                           example.answers, "question")
    return None


def build_examples(part: str, keyword_share: float, articles: dict[str, list[dict[str, Any]]] | None = None,
                   seed: int = SEED) -> list[Example]:
    """All examples of one split part ("train", "tune", "validation"), in a fixed order."""
    from rag.text.lexical import Lexicon, tokenize

    articles = articles if articles is not None else load_articles()
    keys = split_articles(list(articles), seed)[part]
    rng = random.Random(f"{seed}:{part}:keyword")
    out: list[Example] = []
    for name in SETS:
        mine = [k for k in keys if k.startswith(name + ":")]
        pool = [(k, normalize(p["context"]).text) for k in mine for p in articles[k]]
        lexicon = Lexicon([tokenize(text) for _, text in pool])
        for key in mine:
            for paragraph in articles[key]:
                for qa in paragraph["qas"]:
                    question = to_simplified(qa.get("question") or "")
                    gold = paragraph_examples(qa["id"], key, question, paragraph, qa)
                    if gold is None:
                        continue
                    out.append(gold)
                    if (negative := negative_for(gold, pool, lexicon, gold.context)) is not None:
                        out.append(negative)
                    keyword = keyword_variant(question)
                    if keyword and rng.random() < keyword_share:
                        out.append(Example(gold.qid + ":kw", key, keyword, gold.context, gold.start, gold.end,
                                           gold.answers, "keyword"))
    return out


def cached_examples(part: str, share: float, work: Path, directory: Path = BENCHMARKS) -> list[Example]:
    """The examples of one part, built once (BM25 negatives, jieba: ~10 s) and kept in ``work``: a machine
    that has the cache needs neither the benchmark files nor jieba, bm25s and OpenCC."""
    path = work / f"data-{part}-{share}.jsonl"
    if not path.exists():
        work.mkdir(exist_ok=True)
        save_examples(build_examples(part, share, load_articles(directory)), path)
    return load_examples(path)


def save_examples(examples: list[Example], path: Path) -> None:
    lines = [json.dumps(asdict(e), ensure_ascii=False) for e in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_examples(path: Path) -> list[Example]:
    return [Example(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]
