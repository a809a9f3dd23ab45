"""SQuAD-layout files (DRCD, CMRC 2018, SQuAD itself) as documents and questions, with bad items
turned into error rows instead of exceptions: real sets have empty questions and empty paragraphs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.ingest.documents import Document

__all__ = ["load_squad"]


def _read(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InputError(f'{file}: not SQuAD layout (no "data" list)')
    return data


def _id(obj: dict[str, Any], where: str) -> str:
    """The object's id, or its position in the file when it has none."""
    return where if obj.get("id") in (None, "") else str(obj["id"])


def _paragraphs(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(position, paragraph) pairs; an article without a paragraph list yields None for it."""
    for a, article in enumerate(data["data"]):
        paras = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paras, list):
            yield f"data[{a}].paragraphs", None
            continue
        yield from ((f"data[{a}].paragraphs[{p}]", para) for p, para in enumerate(paras))


def _paragraph_problem(para: Any) -> str | None:
    if not isinstance(para, dict):
        return "missing or not an object"
    if not isinstance(para.get("context"), str) or not para["context"].strip():
        return "empty or missing context"
    return None


def _unusable(qid: str, pid: str, error: str, question: Any = None) -> dict[str, Any]:
    return {"qid": qid, "question": question, "gold_paragraph": pid, "answers": [], "error": error}


def _question(pid: str, where: str, qa: Any) -> dict[str, Any]:
    """A question as ``{"qid", "question", "gold_paragraph", "answers"}``, or an unusable one
    with an ``"error"`` (an empty question text is left for ``ask`` to refuse, as a user's)."""
    if not isinstance(qa, dict):
        return _unusable(where, pid, f"{where}: not a question object")
    qid, answers = _id(qa, where), qa.get("answers", [])
    if not isinstance(answers, list) or not all(
            isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers):
        return _unusable(qid, pid, f"{where}: an answer without text", qa.get("question"))
    return {"qid": qid, "question": qa.get("question"), "gold_paragraph": pid,
            "answers": [a["text"] for a in answers]}


def load_squad(file: Path) -> tuple[list[Document], list[dict[str, Any]]]:
    """Paragraphs as ``Document``s and questions as ``{"qid", "question", "gold_paragraph",
    "answers"}``, in file order. Bad data does not stop the run: an unusable question, or every
    question of a paragraph with no text, carries an ``"error"`` (an error row of the report).
    Raises ``InputError`` when the file is not SQuAD-layout JSON or a paragraph id is used twice."""
    docs: dict[str, Document] = {}
    questions: list[dict[str, Any]] = []
    for where, para in _paragraphs(_read(file)):
        pid = _id(para, where) if isinstance(para, dict) else where
        problem = _paragraph_problem(para)
        if problem is None:
            if pid in docs:
                raise InputError(f"{file}: paragraph id {pid!r} appears twice")
            docs[pid] = Document.from_text(pid, para["context"], path=f"{Path(file).name}#{pid}")
        qas = para.get("qas") if isinstance(para, dict) else None
        qs = [_question(pid, f"{where}.qas[{i}]", qa)
              for i, qa in enumerate(qas if isinstance(qas, list) else [])]
        if problem is not None:  # one error row per question it held, or one for itself
            qs = [q | {"error": f"paragraph {pid}: {problem}"} for q in qs] or [
                _unusable(where, pid, f"paragraph {pid}: {problem}")]
        questions += qs
    return list(docs.values()), questions
