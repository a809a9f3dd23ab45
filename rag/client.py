"""Talk to wenda from Python: ``Client`` over HTTP, or ``Client.local()`` in-process.

    c = Client("http://127.0.0.1:8000", api_key=None)   # or Client.local()
    a = c.ask("秦创原量子信息科技联合创新中心聚焦哪些领域?")
    for part in c.stream("它在哪里?", history=[...]): ...   # str deltas, then the Answer
    c.chat([{"role": "user", "content": "..."}]); c.ingest(["notes/"]); c.documents(); c.delete(id)

Both clients share one API and raise the same ``RagError`` subclasses: the HTTP client maps the
server's ``error.code`` back (``invalid_input`` → ``InputError``, ...). ``Client`` takes an
injectable ``httpx.Client``, so tests hand it FastAPI's in-process transport.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from rag.documents import walk
from rag.errors import (
    DocumentError,
    DocumentTooLargeError,
    IncompatibleIndexError,
    IndexStateError,
    IngestCancelled,
    InputError,
    ModelError,
    NotFoundError,
    RagError,
)
from rag.loaders import SUFFIXES
from rag.schema import Answer, Message

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.generate import Generator
    from rag.index import Index

__all__ = ["APIError", "AuthError", "Client", "LocalClient", "split_messages"]

HistoryLike = Sequence[Message | Mapping[str, Any]]


class AuthError(RagError):
    """The server wants ``Authorization: Bearer <RAG_API_KEY>`` (HTTP 401)."""

    code = "unauthorized"


class APIError(RagError):
    """Any other server failure, or the server could not be reached."""

    def __init__(self, message: str, *, code: str = "api_error", status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status


_KNOWN: tuple[type[RagError], ...] = (InputError, DocumentError, DocumentTooLargeError, IndexStateError,
                                     IncompatibleIndexError, NotFoundError, ModelError, AuthError,
                                     IngestCancelled)
_BY_CODE: dict[str, type[RagError]] = {cls.code: cls for cls in _KNOWN}
_BY_CODE |= {"payload_too_large": DocumentError, "unsupported_media_type": DocumentError}


def _text(content: Any) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, Mapping) and p.get("type", "text") == "text")
    return ""


def _turns(messages: HistoryLike | None) -> list[Message]:
    """User and assistant turns as ``Message``s (system, tool and other roles are dropped)."""
    turns = []
    for m in messages or ():
        if isinstance(m, Message):
            turns.append(m)
        elif m.get("role") in ("user", "assistant"):
            turns.append(Message(role=m["role"], content=_text(m.get("content"))))
    return [m for m in turns if m.role in ("user", "assistant")]


def split_messages(messages: HistoryLike) -> tuple[str, list[Message]]:
    """An OpenAI ``messages`` list → ``(question, history)``: the last user message is the
    question; the user/assistant turns before it are the history (system turns are dropped).

    >>> split_messages([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    ...                 {"role": "user", "content": "c"}])[0]
    'c'
    """
    turns = _turns(messages)
    last = max((i for i, m in enumerate(turns) if m.role == "user"), default=None)
    if last is None:
        raise InputError("messages must contain a user message (the question)")
    return turns[last].content, turns[:last]


def _history(history: HistoryLike | None) -> list[dict[str, Any]]:
    return [m.model_dump() for m in _turns(history)]


def _files(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [f for f in walk(p) if f.suffix.lower() in SUFFIXES]
        elif p.is_file():
            found.append(p)
        else:
            raise DocumentError(f"{p}: no such file or directory")
    return found


class Client:
    """A wenda server over HTTP (sync ``httpx``)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 http: httpx.Client | None = None, timeout: float = 120.0) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout)

    @classmethod
    def local(cls, settings: Settings | None = None) -> LocalClient:
        """The same API in-process (no server): opens ``settings.index_dir`` like ``rag ask``."""
        return LocalClient.open(settings)

    # ---- the API -----------------------------------------------------------------------------
    def ask(self, question: str, history: HistoryLike | None = None,
            top_k: int | None = None) -> Answer:
        body: dict[str, Any] = {"question": question, "history": _history(history)}
        if top_k is not None:
            body["top_k"] = top_k
        return Answer.model_validate(self._request("POST", "/ask", json=body))

    def chat(self, messages: HistoryLike) -> Answer:
        body = {"model": "wenda", "messages": _history(messages)}
        return Answer.model_validate(self._request("POST", "/v1/chat/completions", json=body)["wenda"])

    def stream(self, question: str, history: HistoryLike | None = None) -> Iterator[str | Answer]:
        """Text deltas as the server streams them, then the final ``Answer``."""
        messages = [*_history(history), {"role": "user", "content": question}]
        body = {"model": "wenda", "messages": messages, "stream": True}
        with self._call(lambda: self._http.stream("POST", "/v1/chat/completions", json=body,
                                                       headers=self._headers)) as r:
            if r.status_code >= 400:
                r.read()
                self._raise(r)
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise self._error(event["error"], r.status_code)
                if "wenda" in event:
                    yield Answer.model_validate(event["wenda"])
                    continue
                content = event["choices"][0]["delta"].get("content")
                if content:
                    yield content

    def ingest(self, paths: Iterable[str | Path], timeout: float | None = 3600.0) -> dict[str, Any]:
        """Upload files (text, Markdown, PDF, Word, PowerPoint, Excel, HTML, images; folders are
        walked) and ingest them on the server; returns the ingest report.

        The server ingests in a job (``POST /documents`` → 202): this polls ``GET /jobs/{id}``
        until it is done. Past ``timeout`` seconds the job is cancelled (the index stays as it
        was) and ``APIError`` (code ``timeout``) is raised."""
        files = [("files", (f.name, f.read_bytes(), SUFFIXES.get(f.suffix.lower(), "text/plain")))
                 for f in _files(paths)]
        if not files:
            raise DocumentError("no supported files to upload")
        body: dict[str, Any] = self._request("POST", "/documents", files=files)
        if "job" not in body:  # a server from before jobs answers with the report itself
            return body
        return self._await_job(body["job"], timeout)

    def _await_job(self, job: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while job["status"] in ("queued", "running"):
            if deadline is not None and time.monotonic() > deadline:
                self._request("DELETE", f"/jobs/{job['id']}")  # nobody will read its result
                raise APIError(f"the upload job {job['id']} was not done after {timeout} s: cancelled",
                               code="timeout")
            time.sleep(delay)
            delay = min(2 * delay, 1.0)  # quick for small uploads, one request a second for big ones
            job = self._request("GET", f"/jobs/{job['id']}")["job"]
        if job["status"] != "done":
            raise self._error(job.get("error") or {"code": job["status"]}, 500)
        result: dict[str, Any] = job["result"]
        return result

    def documents(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self._request("GET", "/documents")["documents"]
        return docs

    def delete(self, doc_id: str) -> None:
        self._request("DELETE", f"/documents/{quote(doc_id, safe='')}")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health")
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ----------------------------------------------------------------------------
    def _call(self, send: Any) -> Any:
        try:
            return send()
        except httpx.TransportError as exc:
            raise APIError(f"cannot reach wenda at {self._http.base_url}: {exc}") from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self._call(lambda: self._http.request(method, path, headers=self._headers, **kwargs))
        if r.status_code >= 400:
            self._raise(r)
        return r.json()

    def _raise(self, r: httpx.Response) -> None:
        try:
            error = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"code": "api_error", "message": r.text[:500] or r.reason_phrase}
        raise self._error(error, r.status_code)

    @staticmethod
    def _error(error: Mapping[str, Any], status: int) -> RagError:
        code, message = str(error.get("code", "api_error")), str(error.get("message", ""))
        if status == 401:
            return AuthError(message)
        cls = _BY_CODE.get(code)
        return cls(message) if cls else APIError(message, code=code, status=status)


class LocalClient:
    """``Client``'s API in-process: calls ``rag.qa`` and ``rag.ingest`` directly."""

    def __init__(self, index: Index, settings: Settings, generator: Generator | None = None) -> None:
        self.index, self.settings, self.generator = index, settings, generator

    @classmethod
    def open(cls, settings: Settings | None = None) -> LocalClient:
        from rag.bootstrap import make_generator, open_index
        from rag.config import Settings

        settings = settings or Settings()
        return cls(open_index(settings), settings, make_generator(settings))

    def _kwargs(self, top_k: int | None = None) -> dict[str, Any]:
        s = self.settings
        return {"top_k": s.top_k if top_k is None else top_k, "generator": self.generator,
                "max_question_chars": s.max_question_chars, "refuse_below": s.refuse_below}

    def ask(self, question: str, history: HistoryLike | None = None,
            top_k: int | None = None) -> Answer:
        from rag.qa import ask

        return ask(self.index, question, history=_turns(history), **self._kwargs(top_k))

    def chat(self, messages: HistoryLike) -> Answer:
        question, history = split_messages(messages)
        return self.ask(question, history)

    def stream(self, question: str, history: HistoryLike | None = None) -> Iterator[str | Answer]:
        from rag.qa import stream_ask

        return stream_ask(self.index, question, history=_turns(history), **self._kwargs())

    def ingest(self, paths: Iterable[str | Path]) -> dict[str, Any]:
        from rag.ingest import ingest_paths

        files, report = ingest_paths(self.index, list(paths), chunk_size=self.settings.chunk_size,
                                     overlap=self.settings.chunk_overlap, limits=self.settings.limits())
        return {"documents": [f.doc_id for f in files], **asdict(report)}

    def documents(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.index.documents()]

    def delete(self, doc_id: str) -> None:
        from rag.ingest import delete_documents

        if not delete_documents(self.index, [doc_id]):
            raise NotFoundError(f"no document {doc_id!r} in the index")

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "index": self.index.stats()}

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
