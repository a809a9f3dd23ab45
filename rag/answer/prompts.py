"""Prompt templates live as files in ``prompts/``: ``NAME.LANG.md``, filled with
``string.Template`` (``$question``, ``$passages`` …). A missing variable is an error, not a
silent blank."""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from rag.errors import RagError

__all__ = ["PROMPTS_DIR", "PromptError", "language_of", "render"]

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


class PromptError(RagError):
    """A prompt file is missing or a variable it needs was not given."""

    code = "prompt_error"


@lru_cache(maxsize=64)
def _load(name: str, lang: str) -> string.Template:
    for candidate in (f"{name}.{lang}.md", f"{name}.zh-Hans.md", f"{name}.md"):
        path = PROMPTS_DIR / candidate
        if path.is_file():
            return string.Template(path.read_text(encoding="utf-8"))
    raise PromptError(f"no prompt named {name!r} in {PROMPTS_DIR}")


def render(name: str, lang: str = "zh-Hans", **variables: str) -> str:
    """The prompt ``name`` in ``lang`` (``zh-Hans``, ``zh-Hant`` or ``en``), filled in."""
    try:
        return _load(name, lang).substitute(variables).strip()
    except KeyError as exc:
        raise PromptError(f"prompt {name!r} needs variable {exc.args[0]!r}") from exc


def language_of(question: str) -> str:
    """``zh-Hant`` / ``zh-Hans`` for Chinese questions (by script), else ``en``."""
    from rag.text.normalize import has_cjk, is_traditional

    if not has_cjk(question):
        return "en"
    return "zh-Hant" if is_traditional(question) else "zh-Hans"
