"""The reader's hard no-answer examples (evals/reader_hard.py)."""

from __future__ import annotations

from pathlib import Path

from evals.reader_data import Example
from evals.reader_hard import officials, swapped
from rag.text.normalize import normalize

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def test_officials_answers_are_exact_slices_and_near_misses_have_none() -> None:
    examples = officials(60)
    assert examples == officials(60)  # fixed seed
    answered = [e for e in examples if e.start is not None]
    missing = [e for e in examples if e.start is None]
    assert len(answered) > 150 and len(missing) > 100
    for e in answered:
        assert e.start is not None and e.end is not None
        assert e.context[e.start:e.end] == e.answers[0]
    roles = [e for e in answered if e.question.endswith(("担任什么职务?", "的职务是什么?"))]
    assert roles and all(e.context[e.end:].startswith(e.question[:2]) for e in roles)  # title, name
    for e in missing:
        if e.question.startswith("谁是") or e.question.endswith("是谁?"):
            post = e.question.removeprefix("谁是").removesuffix("是谁?").rstrip("?")
            assert post not in e.context  # nobody holds the post asked for


def test_officials_never_draw_the_seeds_people_or_places() -> None:
    seeds = "".join(normalize(p.read_text(encoding="utf-8")).text for p in SEEDS.glob("*.txt"))
    examples = officials(300)
    for name in ("咸阳", "西咸", "兰州", "福州", "周东", "张宏伟", "姜建春", "刘宇斌", "杨胜良"):
        assert name in seeds
        assert not any(name in e.context or name in e.question for e in examples)


def _gold(qid: str, article: str, question: str, context: str, answer: str) -> Example:
    at = context.index(answer)
    return Example(qid, article, question, context, at, at + len(answer), [answer], "question")


def test_swapped_questions_name_what_the_paragraph_never_mentions() -> None:
    golds = [
        _gold("a1", "drcd:1", "北京大学创立于哪一年?", "北京大学创立于1898年,初名京师大学堂。", "1898年"),
        _gold("b1", "drcd:2", "上海交通大学的校训是什么?", "上海交通大学的校训是饮水思源。", "饮水思源"),
        _gold("c1", "drcd:3", "第九次会议在哪里召开?", "第九次会议在福州召开。", "福州"),
        _gold("d1", "drcd:4", "2008年奥运会在哪座城市举办?", "2008年奥运会在北京举办。", "北京"),
    ]
    out = swapped(golds, 1.0)
    assert out and all(e.start is None and e.end is None and e.qid.endswith(":swap") for e in out)
    for e in out:
        gold = next(g for g in golds if g.qid == e.qid.removesuffix(":swap"))
        assert e.question != gold.question and e.context == gold.context
        changed = "".join(ch for ch in e.question if ch not in gold.question)
        assert changed and changed not in gold.context
    assert swapped(golds, 0.0) == []
