"""Settings refuse nonsensical values at construction, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import ConfigError, RagError


def test_defaults_are_valid() -> None:
    s = Settings()
    assert 1 <= s.top_k <= s.max_top_k


@pytest.mark.parametrize(("env", "named"), [
    ({"RAG_TOP_K": "80"}, "RAG_TOP_K=80 is above RAG_MAX_TOP_K=50"),
    ({"RAG_TOP_K": "9", "RAG_MAX_TOP_K": "8"}, "RAG_TOP_K=9 is above RAG_MAX_TOP_K=8"),
    ({"RAG_TOP_K": "0"}, "RAG_TOP_K"),
    ({"RAG_MAX_TOP_K": "80"}, "RAG_MAX_TOP_K"),  # retrieval has 50 candidates per path
    ({"RAG_MAX_QUESTION_CHARS": "-1"}, "RAG_MAX_QUESTION_CHARS"),
    ({"RAG_CHUNK_SIZE": "5"}, "RAG_CHUNK_SIZE"),
    ({"RAG_CHUNK_OVERLAP": "-1"}, "RAG_CHUNK_OVERLAP"),
    ({"RAG_REFUSE_BELOW": "1.5"}, "RAG_REFUSE_BELOW"),
    ({"RAG_RATE_LIMIT_PER_MINUTE": "0"}, "RAG_RATE_LIMIT_PER_MINUTE"),
    ({"RAG_MAX_UPLOAD_BYTES": "0"}, "RAG_MAX_UPLOAD_BYTES"),
    ({"RAG_LLM_THREADS": "0"}, "RAG_LLM_THREADS"),
    ({"RAG_KEEP_ALIVE_S": "0"}, "RAG_KEEP_ALIVE_S"),
    ({"RAG_TOP_K": "many"}, "RAG_TOP_K='many'"),
])
def test_bad_values_raise_config_error(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                       named: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named) as info:
        Settings()
    assert isinstance(info.value, RagError)


def test_keyword_arguments_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="RAG_TOP_K=51 is above"):
        Settings(top_k=51)
    assert Settings(top_k=50).top_k == 50


def test_rag_serve_stops_at_startup(tmp_path: Path) -> None:
    env = {**os.environ, "RAG_TOP_K": "80", "RAG_INDEX_DIR": str(tmp_path / "never")}
    done = subprocess.run([sys.executable, "-m", "rag", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "RAG_TOP_K=80 is above RAG_MAX_TOP_K=50" in done.stderr
    assert not (tmp_path / "never").exists()
