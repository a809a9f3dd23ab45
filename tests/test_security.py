"""Hardening (issue 16): each finding reproduced over real sockets, against uvicorn configured as
``rag serve`` configures it (``server.app.uvicorn_options``), in-process with the fake embedder;
the rate-limit bypass also against a ``rag serve`` subprocess (integration tier).

Findings: a chunked upload without the key was read to the end before its 401 (500 MB to a temp
file), and one with the key before its 413; any JSON body size was parsed; ``X-Forwarded-For``
from loopback was believed, so rotating it beat the rate limit; lone surrogates in history or
``model`` gave 500s; ``/health`` showed server paths and miscounted documents; connections that
never finished their headers were held forever; a disconnected stream generated to the end; the
OpenAI route echoed any ``model`` and ignored ``n``/tools silently; the retryable 503 had no
``Retry-After``.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import serving
from fastapi.testclient import TestClient

from rag.answer.generate import Draft, Generator, load_generator
from rag.config import Settings
from rag.ingest import ingest
from rag.ingest.documents import Document
from rag.store.index import Index
from server.app import create_app, uvicorn_options

KEY = "s3cret-api-key-7f3a"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "秦创原量子信息科技联合创新中心聚焦哪些领域?"
BOUNDARY = "xyz"


@contextmanager
def running(index: Index, generator: Generator | None = None, **overrides: Any) -> Iterator[str]:
    """The app on a free loopback port, in a thread, with ``rag serve``'s uvicorn options."""
    settings = Settings(**{"index_dir": index.directory, "generator": "extractive", **overrides})
    with serving(create_app(settings, index=index, generator=generator), **uvicorn_options(settings)) as base:
        yield base


def connect(base: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    return sock


def chunked_upload_head(headers: dict[str, str] | None = None) -> bytes:
    lines = ["POST /documents HTTP/1.1", "Host: test", "Transfer-Encoding: chunked",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n").encode()
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + chunk(part)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def answered(sock: socket.socket, wait: float = 0.0) -> bool:
    return bool(select.select([sock], [], [], wait)[0])


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"connection closed after {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return int(status_line.split()[1]), headers, body


def send_until_answered(sock: socket.socket, pieces: Iterator[bytes]) -> int:
    """Send ``pieces`` until the server answers (or hangs up); the bytes sent by then."""
    sent = 0
    for piece in pieces:
        if answered(sock):
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
    assert answered(sock, wait=10), "no answer"
    return sent


# ---- 1. uploads: the key before the body, the size while it arrives ------------------------------
def test_chunked_upload_without_the_key_is_refused_before_its_body(seed_index: Index) -> None:
    """Before: the whole body was parsed (spooled to a temp file) and only then the 401 came."""
    with running(seed_index, api_key=KEY) as base, connect(base) as sock:
        sock.sendall(chunked_upload_head() + chunk(b"x" * 4096))  # never finished
        assert answered(sock, wait=10), "the server waited for the rest of the body"
        status, headers, body = read_response(sock)
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
        assert headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{base}/health").status_code == 200  # still serving


def test_chunked_upload_with_the_key_stops_at_the_limit(seed_index: Index) -> None:
    """Before: 50 MB chunked (no Content-Length) were read in full before the 413."""
    limit, total = 100_000, 20_000_000
    with running(seed_index, api_key=KEY, max_upload_bytes=limit) as base, connect(base) as sock:
        pieces = iter([chunked_upload_head(AUTH), *(chunk(b"x" * 16_384) for _ in range(total // 16_384))])
        sent = send_until_answered(sock, pieces)
        status, _, body = read_response(sock)
        assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"
        assert sent < total / 2, f"the server read {sent} bytes before refusing"
        assert httpx.get(f"{base}/health").status_code == 200


# ---- 2. JSON bodies and history ------------------------------------------------------------------
def test_json_bodies_over_the_limit_are_413(seed_index: Index) -> None:
    """Before: any size was parsed (a 400 MB body took the server from 694 to 1,571 MB)."""
    big = json.dumps({"question": QUESTION, "padding": "x" * 5_000_000}).encode()
    with running(seed_index) as base:
        r = httpx.post(f"{base}/ask", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

        def pieces() -> Iterator[bytes]:  # chunked: no Content-Length to refuse on
            for i in range(0, len(big), 65_536):
                yield big[i:i + 65_536]
        with httpx.Client() as client:
            r = client.post(f"{base}/v1/chat/completions", content=pieces(),
                            headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert httpx.post(f"{base}/ask", json={"question": QUESTION}).status_code == 200


@pytest.mark.parametrize(("turns", "chars"), [(51, 10), (11, 1_900)])
def test_history_is_capped_by_turns_and_characters(make_client: Callable[..., TestClient], turns: int,
                                                   chars: int) -> None:
    """Before: any number of turns of up to 2,000 characters each were tokenized."""
    client = make_client()
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": "问" * chars} for i in range(turns)]
    r = client.post("/ask", json={"question": QUESTION, "history": history})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    assert "history" in r.json()["error"]["message"] and "limit" in r.json()["error"]["message"]
    messages = [*history, {"role": "user", "content": QUESTION}]
    r = client.post("/v1/chat/completions", json={"model": "wenda", "messages": messages})
    assert r.status_code == 400 and "history" in r.json()["error"]["message"]
    assert client.post("/ask", json={"question": QUESTION, "history": history[:10]}).status_code == 200


# ---- 4. rate limit: X-Forwarded-For only from trusted proxies ------------------------------------
def rotate_forwarded_for(base: str, source: str, n: int = 40) -> int:
    """Requests answered (not 429) out of ``n``, each claiming another client address."""
    ok = 0
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        for i in range(n):
            r = client.get(f"{base}/v1/models", headers={"X-Forwarded-For": f"203.0.113.{i}"})
            ok += r.status_code != 429
    return ok


def test_forwarded_for_rotation_does_not_beat_the_rate_limit(seed_index: Index) -> None:
    """Before: uvicorn believed X-Forwarded-For from 127.0.0.1, so each request was a new client
    (40 of 40 answered at 30 a minute)."""
    with running(seed_index, rate_limit_per_minute=30) as base:
        assert rotate_forwarded_for(base, "127.0.0.1") <= 30


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(seed_index: Index) -> None:
    with running(seed_index, rate_limit_per_minute=30, trusted_proxies="127.0.0.2") as base:
        assert rotate_forwarded_for(base, "127.0.0.2") == 40  # a proxy forwarding 40 clients
        assert rotate_forwarded_for(base, "127.0.0.1") <= 30  # anyone else: their own address


def test_rag_serve_trusts_no_proxy_by_default() -> None:
    options = uvicorn_options(Settings())
    assert options["proxy_headers"] is False and options["forwarded_allow_ips"] == ""
    options = uvicorn_options(Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1"))
    assert options["proxy_headers"] is True and options["forwarded_allow_ips"] == "10.0.0.0/8, 127.0.0.1"


@pytest.mark.integration
def test_rag_serve_rate_limit_ignores_forwarded_for(tmp_path: Path) -> None:
    """The finding as found: ``rag serve`` itself, a client on loopback rotating the header."""
    from evals.load import serve

    env = {"RAG_EMBEDDER": "use", "RAG_RATE_LIMIT_PER_MINUTE": "30"}
    with serve(tmp_path / "index", env=env, timeout=180) as base:
        assert rotate_forwarded_for(base, "127.0.0.1") <= 30


# ---- low: connections, surrogates, health, the OpenAI route, Retry-After ------------------------
def test_connections_must_finish_their_headers_in_time(seed_index: Index) -> None:
    """Before: a connection sending a header byte now and then (or nothing) was kept forever."""
    with (running(seed_index, header_timeout_s=0.5) as base,
          connect(base) as silent, connect(base) as dripping, connect(base) as kept):
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(kept)[0] == 200
        start = time.monotonic()
        for byte in b"GET /health HTTP/1.1\r\nHost: t":
            if answered(dripping):
                break
            dripping.send(bytes([byte]))
            time.sleep(0.1)
        assert answered(dripping, wait=3) and dripping.recv(1024) == b""
        assert answered(silent, wait=3) and silent.recv(1024) == b""
        assert time.monotonic() - start < 4
        # an idle kept-alive connection is not cut by the header deadline (RAG_KEEP_ALIVE_S is)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert read_response(kept)[0] == 200


def test_lone_surrogates_in_history_and_model_are_not_500(make_client: Callable[..., TestClient]) -> None:
    """Before: ``\\ud800`` in history reached standalone_question and failed the JSON (500, or a
    stream cut without [DONE]); in ``model`` it was echoed and failed the same way."""
    client = make_client()

    def post(path: str, body: dict[str, Any]) -> Any:  # ensure_ascii: surrogates travel as \\ud800
        return client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})

    history = [{"role": "user", "content": "秦创原\ud800"}, {"role": "assistant", "content": "x\udfff"}]
    r = post("/ask", {"question": "它在哪里?", "history": history})
    assert r.status_code == 200 and r.json()["answer"]
    messages = [*history, {"role": "user", "content": "它在哪里?"}]
    r = post("/v1/chat/completions", {"model": "wenda", "messages": messages, "stream": True})
    assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
    assert '"internal_error"' not in r.text
    for stream in (False, True):
        r = post("/v1/chat/completions", {"model": "wenda\ud800", "stream": stream, "messages": messages})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_health_shows_no_server_paths_and_counts_every_document(
        seed_index: Index, make_client: Callable[..., TestClient]) -> None:
    """Before: /health (no key needed) showed the index's absolute path, and counted documents
    from chunks, so a document without chunks was in GET /documents but not in /health."""
    ingest(seed_index, [Document("blank", " ", "0" * 64)])  # kept, but nothing to chunk
    client = make_client()
    listed = client.get("/documents").json()
    assert listed["count"] == 3 and min(d["chunks"] for d in listed["documents"]) == 0
    r = client.get("/health")
    assert r.json()["index"]["documents"] == listed["count"]
    assert str(seed_index.directory.parent) not in r.text and "directory" not in r.json()["index"]


UNKNOWN_MODEL = (404, "model_not_found")  # issue 14: each collection is a model; others are 404


@pytest.mark.parametrize(("extra", "refused"), [
    ({"model": "gpt-4o"}, UNKNOWN_MODEL), ({"model": "wenda/" + "x" * 200}, UNKNOWN_MODEL),
    ({"model": "wenda/seeds"}, UNKNOWN_MODEL), ({"n": 2}, (400, "unsupported")),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, (400, "unsupported")),
    ({"tool_choice": "auto"}, (400, "unsupported")), ({"functions": [{"name": "f"}]}, (400, "unsupported")),
    ({"response_format": {"type": "json_object"}}, (400, "unsupported")),
    ({"model": "wenda/default"}, None), ({"n": 1, "tools": [], "tool_choice": "none"}, None),
    ({"response_format": {"type": "text"}, "temperature": 0.2}, None),
])
def test_openai_route_refuses_what_it_does_not_support(make_client: Callable[..., TestClient],
                                                       extra: dict[str, Any],
                                                       refused: tuple[int, str] | None) -> None:
    """Before: any model name was echoed back (1 MB name, 1 MB reply); n, tools and
    response_format were ignored silently."""
    body = {"model": "wenda", "messages": [{"role": "user", "content": QUESTION}], **extra}
    r = make_client().post("/v1/chat/completions", json=body)
    if refused is None:
        assert r.status_code == 200 and r.json()["model"] == body["model"]
    else:
        assert (r.status_code, r.json()["error"]["code"]) == refused, r.text
        assert len(r.text) < 500  # the name is not echoed at any length


def test_index_changed_while_answering_says_when_to_retry(make_client: Callable[..., TestClient],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.errors import NotFoundError
    from server.routes import ask

    def vanished(*args: Any, **kwargs: Any) -> Any:
        raise NotFoundError("no document 'x' in the index")

    client = make_client()
    monkeypatch.setattr(ask, "ask", vanished)
    r = client.post("/ask", json={"question": QUESTION})
    assert r.status_code == 503 and r.json()["error"]["code"] == "index_error"
    assert r.headers["retry-after"] == "1"


class SlowGenerator:
    """The extractive answer after ``pieces`` slow text deltas; counts the deltas it produced."""

    name = "slow"

    def __init__(self, pieces: int = 100, delay: float = 0.05) -> None:
        self.pieces, self.delay, self.produced = pieces, delay, 0
        self.inner = load_generator("extractive")

    def generate(self, question: str, passages: Sequence[Any], *, idf: dict[str, float]) -> Draft:
        return self.inner.generate(question, passages, idf=idf)

    def stream(self, question: str, passages: Sequence[Any], *,
               idf: dict[str, float]) -> Iterator[str | Draft]:
        for _ in range(self.pieces):
            time.sleep(self.delay)
            self.produced += 1
            yield "字"
        yield self.inner.generate(question, passages, idf=idf)


def test_a_disconnected_stream_stops_generating(seed_index: Index) -> None:
    """Before: the model kept generating for a client that had gone."""
    slow = SlowGenerator()
    body = {"model": "wenda", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with running(seed_index, generator=slow) as base:
        with httpx.Client() as client, client.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
            lines = r.iter_lines()
            while "字" not in next(lines):
                pass
        time.sleep(1.0)
        stopped_at = slow.produced
        time.sleep(0.5)
        assert slow.produced == stopped_at < slow.pieces
