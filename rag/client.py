"""Talk to wenda from Python: ``Client`` over HTTP, or ``Client.local()`` in-process.

    c = Client("http://127.0.0.1:8000", api_key=None)   # or Client.local()
    a = c.ask("秦创原量子信息科技联合创新中心聚焦哪些领域?")
    for part in c.stream("它在哪里?", history=[...]): ...   # str deltas, then the Answer
    c.chat([{"role": "user", "content": "..."}]); c.ingest(["notes/"]); c.documents(); c.delete(id)

    c.create_collection("hr"); c.collections()            # [{"name", "documents", "chunks", ...}]
    hr = c.collection("hr")                               # the same methods, on collection "hr"
    hr.ingest(["policies/"], tags=["2024"]); hr.ask("年假几天?", filter={"tags_any": ["2024"]})

Both clients share one API and raise the same ``RagError`` subclasses: the HTTP client maps the
server's ``error.code`` back (``invalid_input`` → ``InputError``, ...). ``Client`` takes an
injectable ``httpx.Client``, so tests hand it FastAPI's in-process transport.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

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
from rag.ingest.documents import walk
from rag.loaders import SUFFIXES
from rag.messages import HistoryLike, history_dicts, split_messages, turns
from rag.schema import Answer
from rag.store.collections import DEFAULT
from rag.store.filters import Filter

if TYPE_CHECKING:
    from rag.answer.generate import Generator
    from rag.answer.reading import Judge
    from rag.config import Settings
    from rag.store.backend import SearchBackend

__all__ = ["APIError", "AuthError", "Client", "ForbiddenError", "LocalClient", "split_messages"]

FilterLike = Filter | Mapping[str, Any] | None


class AuthError(RagError):
    """The server wants ``Authorization: Bearer <key>``: no key, or an unknown one (HTTP 401)."""

    code = "unauthorized"


class ForbiddenError(AuthError):
    """The key is known but lacks the right (read, write, admin) on that collection (HTTP 403)."""

    code = "forbidden"


class APIError(RagError):
    """Any other server failure, or the server could not be reached."""

    def __init__(self, message: str, *, code: str = "api_error", status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status


_KNOWN: tuple[type[RagError], ...] = (InputError, DocumentError, DocumentTooLargeError, IndexStateError,
                                     IncompatibleIndexError, NotFoundError, ModelError, AuthError,
                                     IngestCancelled)
_BY_CODE: dict[str, type[RagError]] = {cls.code: cls for cls in _KNOWN}
_BY_CODE |= {"payload_too_large": DocumentError, "unsupported_media_type": DocumentError,
             "exists": InputError, "forbidden": ForbiddenError, "model_not_found": NotFoundError}


def _where(filter: FilterLike) -> dict[str, Any]:
    """``{"filter": {...}}`` for a request body, or nothing without one (checked here: a bad
    filter is ``InputError`` before anything is sent)."""
    where = Filter.parse(filter)
    return {"filter": where.to_dict()} if where else {}


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
        self.collection_name = DEFAULT

    @classmethod
    def local(cls, settings: Settings | None = None) -> LocalClient:
        """The same API in-process (no server): opens ``settings.index_dir`` like ``rag ask``."""
        return LocalClient.open(settings)

    # ---- collections -------------------------------------------------------------------------
    def collection(self, name: str) -> Client:
        """This client scoped to collection ``name``: the same methods (``ask``, ``chat``,
        ``stream``, ``ingest``, ``documents``, ``delete``) on it, over the same connection and key
        (closing either closes both). A missing collection is ``NotFoundError`` on the first call."""
        scoped = copy.copy(self)
        scoped.collection_name = name
        return scoped

    def collections(self) -> list[dict[str, Any]]:
        """The collections this key may read: ``{"name", "documents", "chunks", "rights"}`` each."""
        found: list[dict[str, Any]] = self._request("GET", "/collections")["collections"]
        return found

    def create_collection(self, name: str) -> dict[str, Any]:
        """A new, empty collection (``InputError`` if it exists): ``{"name", "documents", "chunks"}``."""
        created: dict[str, Any] = self._request("POST", "/collections", json={"name": name})
        return created

    def drop_collection(self, name: str) -> None:
        """Delete collection ``name`` and every document in it (the default one cannot be dropped)."""
        self._request("DELETE", f"/collections/{quote(name, safe='')}", params={"confirm": name})

    # ---- the API -----------------------------------------------------------------------------
    def ask(self, question: str, history: HistoryLike | None = None,
            top_k: int | None = None, filter: FilterLike = None) -> Answer:
        """``filter``: a ``rag.store.filters.Filter`` or ``{"doc_ids", "path_prefix", "tags_any",
        "tags_all"}`` (any of them) limiting the documents the answer may draw on."""
        body: dict[str, Any] = {"question": question, "history": history_dicts(history), **_where(filter)}
        if self.collection_name != DEFAULT:
            body["collection"] = self.collection_name
        if top_k is not None:
            body["top_k"] = top_k
        return Answer.model_validate(self._request("POST", "/ask", json=body))

    def chat(self, messages: HistoryLike, filter: FilterLike = None) -> Answer:
        body = {"model": self._model, "messages": history_dicts(messages), **_where(filter)}
        return Answer.model_validate(self._request("POST", "/v1/chat/completions", json=body)["wenda"])

    def stream(self, question: str, history: HistoryLike | None = None,
               filter: FilterLike = None) -> Iterator[str | Answer]:
        """Text deltas as the server streams them, then the final ``Answer``."""
        messages = [*history_dicts(history), {"role": "user", "content": question}]
        body = {"model": self._model, "messages": messages, "stream": True, **_where(filter)}
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

    def ingest(self, paths: Iterable[str | Path], timeout: float | None = 3600.0, *,
               tags: Sequence[str] | None = None) -> dict[str, Any]:
        """Upload files (text, Markdown, PDF, Word, PowerPoint, Excel, HTML, images; folders are
        walked) and ingest them on the server; returns the ingest report. ``tags`` replace the
        given documents' tags (their Markdown front matter's stay).

        The server ingests in a job (``POST /documents`` → 202): this polls ``GET /jobs/{id}``
        until it is done. Past ``timeout`` seconds the job is cancelled (the index stays as it
        was) and ``APIError`` (code ``timeout``) is raised."""
        files = [("files", (f.name, f.read_bytes(), SUFFIXES.get(f.suffix.lower(), "text/plain")))
                 for f in _files(paths)]
        if not files:
            raise DocumentError("no supported files to upload")
        # no field: tags kept; [""]: the given tags cleared, as ``tags=[]`` does in-process
        form = None if tags is None else {"tags": list(tags) or [""]}
        body: dict[str, Any] = self._request("POST", self._path("/documents"), files=files, data=form)
        if "job" not in body:  # a server from before jobs answers with the report itself
            return body
        return self._await_job(body["job"], timeout)

    def _await_job(self, job: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while job["status"] in ("queued", "running"):
            if deadline is not None and time.monotonic() > deadline:
                self._request("DELETE", self._path(f"/jobs/{job['id']}"))  # nobody will read its result
                raise APIError(f"the upload job {job['id']} was not done after {timeout} s: cancelled",
                               code="timeout")
            time.sleep(delay)
            delay = min(2 * delay, 1.0)  # quick for small uploads, one request a second for big ones
            job = self._request("GET", self._path(f"/jobs/{job['id']}"))["job"]
        if job["status"] != "done":
            raise self._error(job.get("error") or {"code": job["status"]}, 500)
        result: dict[str, Any] = job["result"]
        return result

    def documents(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self._request("GET", self._path("/documents"))["documents"]
        return docs

    def delete(self, doc_id: str) -> None:
        self._request("DELETE", self._path(f"/documents/{quote(doc_id, safe='')}"))

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
    @property
    def _model(self) -> str:
        """The OpenAI ``model`` naming this client's collection."""
        return "wenda" if self.collection_name == DEFAULT else f"wenda/{self.collection_name}"

    def _path(self, route: str) -> str:
        """A collection route: today's ``/documents``, ``/jobs`` for the default collection (so
        servers from before collections keep working), ``/collections/{name}/...`` for others."""
        if self.collection_name == DEFAULT:
            return route
        return f"/collections/{quote(self.collection_name, safe='')}{route}"

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
        if status in (401, 403):
            return AuthError(message) if status == 401 else ForbiddenError(message)
        cls = _BY_CODE.get(code)
        return cls(message) if cls else APIError(message, code=code, status=status)


class LocalClient:
    """``Client``'s API in-process: calls ``rag.qa``, ``rag.ingest`` and ``rag.store.collections``
    directly. ``index`` is collection ``collection``'s (under ``settings.index_dir``)."""

    def __init__(self, index: SearchBackend, settings: Settings, generator: Generator | None = None,
                 collection: str = DEFAULT, reader: Judge | None = None) -> None:
        self.index, self.settings, self.generator = index, settings, generator
        self.collection_name, self.reader = collection, reader

    @classmethod
    def open(cls, settings: Settings | None = None) -> LocalClient:
        from rag.bootstrap import make_generator, make_judge, open_index
        from rag.config import Settings

        settings = settings or Settings()
        return cls(open_index(settings), settings, make_generator(settings), reader=make_judge(settings))

    # ---- collections -------------------------------------------------------------------------
    def collection(self, name: str) -> LocalClient:
        """This client on collection ``name`` (``NotFoundError`` if there is none: see
        ``create_collection``); the embedder and generator are shared, not loaded again."""
        from rag.store.collections import open_collection

        index = open_collection(self.settings.location(), name, self.index.embedder)
        return LocalClient(index, self.settings, self.generator, name, self.reader)

    def collections(self) -> list[dict[str, Any]]:
        """Every collection: ``{"name", "documents", "chunks", "rights"}`` (in-process: all rights)."""
        from rag.keys import RIGHTS
        from rag.store.collections import list_collections

        return [{**_summary(self.collection(name).index, name), "rights": list(RIGHTS)}
                for name in list_collections(self.settings.location())]

    def create_collection(self, name: str) -> dict[str, Any]:
        """A new, empty collection (``InputError`` if it exists): ``{"name", "documents", "chunks"}``."""
        from rag.store.collections import create_collection

        return _summary(create_collection(self.settings.location(), name, self.index.embedder), name)

    def drop_collection(self, name: str) -> None:
        """Delete collection ``name`` and every document in it (the default one cannot be dropped)."""
        from rag.store.collections import drop_collection

        drop_collection(self.settings.location(), name)

    # ---- the API -----------------------------------------------------------------------------
    def _kwargs(self, top_k: int | None = None, filter: FilterLike = None) -> dict[str, Any]:
        s = self.settings
        return {"top_k": s.top_k if top_k is None else top_k, "generator": self.generator,
                "max_question_chars": s.max_question_chars, "refuse_below": s.refuse_below,
                "where": Filter.parse(filter) or None, "reader": self.reader}

    def ask(self, question: str, history: HistoryLike | None = None,
            top_k: int | None = None, filter: FilterLike = None) -> Answer:
        from rag.qa import ask

        return ask(self.index, question, history=turns(history), **self._kwargs(top_k, filter))

    def chat(self, messages: HistoryLike, filter: FilterLike = None) -> Answer:
        question, history = split_messages(messages)
        return self.ask(question, history, filter=filter)

    def stream(self, question: str, history: HistoryLike | None = None,
               filter: FilterLike = None) -> Iterator[str | Answer]:
        from rag.qa import stream_ask

        return stream_ask(self.index, question, history=turns(history), **self._kwargs(filter=filter))

    def ingest(self, paths: Iterable[str | Path], *, tags: Sequence[str] | None = None
               ) -> dict[str, Any]:
        from rag.ingest import ingest_paths

        files, report = ingest_paths(self.index, list(paths), chunk_size=self.settings.chunk_size,
                                     overlap=self.settings.chunk_overlap, limits=self.settings.limits(),
                                     tags=tags)
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


def _summary(index: SearchBackend, name: str) -> dict[str, Any]:
    stats = index.stats()
    return {"name": name, "documents": stats["documents"], "chunks": stats["chunks"]}
