"""The generator seam: turn numbered passages into a ``Draft`` answer with ``[n]`` markers.

A generator never sees files or offsets it could get wrong: it receives ``Passage``s numbered
from 1 and returns text plus ``Evidence`` (which passage, which normalized span). ``rag.answer.cite``
turns evidence into verified citations; ``rag.qa`` is the only caller.

Backends: ``extractive`` (always available, ``rag.answer.extract``); ``local`` and ``openai``
(``rag.answer.llm``, grounded sentence by sentence by ``rag.answer.grounding``). The types they share live in
``rag.answer.draft`` and are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.answer.draft import Draft, Evidence, Generator, Passage

if TYPE_CHECKING:
    from rag.config import Settings

__all__ = ["AUTO", "LLM_EXTRA", "Draft", "Evidence", "Generator", "Passage", "load_generator",
           "local_available", "require_llama_cpp"]


# What ``auto`` runs. Measured with ``rag eval --compare`` on evals/gold/seeds.jsonl (README,
# "Generators"): extractive 100% accuracy at p50 13 ms; bundled LLMs behind the grounding
# check, 0.5B 90.5% at p50 2.6 s, 1.5B 93.7% at 4.5 s. The LLMs cite a little more precisely
# (83% vs 80%) and write shorter answers, but lose on accuracy and latency, so ``auto`` stays extractive
# and ``RAG_GENERATOR=local`` opts in. Re-measure before changing this.
AUTO = "extractive"


# What to tell someone who asks for the local LLM without llama-cpp-python: it is an opt-in extra
# (compiling llama.cpp takes ~15 minutes the first time), and the default path never needs it.
LLM_EXTRA = "the local LLM needs the `llm` extra: run `make llm` (or pip install -e '.[llm]')"


def require_llama_cpp(model: str = "qwen-0.5b") -> None:
    """``ModelError`` naming the ``llm`` extra unless llama-cpp-python is importable. Looks the
    module up without importing it: nothing in wenda imports llama_cpp before a local model loads."""
    from importlib.util import find_spec

    from rag.errors import ModelError
    from rag.models.gguf import MODELS

    if find_spec("llama_cpp") is not None:
        return
    spec = MODELS.get(model)
    more = f"; {model} also needs {spec.install_hint}" if spec and spec.extra != "llm" else ""
    raise ModelError(f"llama-cpp-python is not installed: {LLM_EXTRA}{more}. The first install "
                     f"compiles llama.cpp (~15 minutes on 2 cores; the wheel is cached after). "
                     f"RAG_GENERATOR=auto or extractive answers without it.")


def local_available(model: str = "qwen-0.5b") -> bool:
    """Can ``local`` run ``model``: llama-cpp-python importable, and the model's part packages
    installed (or the ``.gguf`` file present)?"""
    from importlib.util import find_spec
    from pathlib import Path

    from rag.models.gguf import MODELS, installed

    if find_spec("llama_cpp") is None:
        return False
    spec = MODELS.get(model)
    return installed(spec) if spec else Path(model).expanduser().is_file()


def load_generator(name: str, settings: Settings | None = None) -> Generator:
    """A generator by name: ``extractive``; ``local`` (llama.cpp; ``local:qwen-1.5b`` or
    ``local:/path/model.gguf`` overrides ``settings.local_model``); ``openai`` (needs
    ``llm_base_url`` and ``llm_model``); ``auto``: ``AUTO`` (measured best; ``local`` only if it
    can run).
    ``settings`` default to ``Settings()`` field defaults (the environment is not read here)."""
    from rag.answer.extract import Extractive
    from rag.config import Settings
    from rag.errors import InputError

    s = settings or Settings.model_construct()
    kind, _, model = name.partition(":")
    if kind == "auto":
        kind = AUTO if AUTO != "local" or local_available(model or s.local_model) else "extractive"
    if kind == "extractive" and not model:
        return Extractive()
    if kind == "local":
        require_llama_cpp(model or s.local_model)
        from rag.answer.llm import LocalLLM

        return LocalLLM(model or s.local_model, cache_dir=s.model_cache, threads=s.llm_threads,
                        max_tokens=s.llm_max_tokens)
    if kind == "openai":
        from rag.answer.llm import OpenAILLM

        if not s.llm_base_url or not (model or s.llm_model):
            raise InputError("the openai generator needs RAG_LLM_BASE_URL and RAG_LLM_MODEL")
        return OpenAILLM(s.llm_base_url, model or s.llm_model or "", api_key=s.llm_api_key,
                         max_tokens=s.llm_max_tokens)
    raise InputError(f"unknown generator {name!r}; available: auto, extractive, local, "
                     f"local:MODEL, openai, openai:MODEL")
