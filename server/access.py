"""Who may do what: API keys with scopes (``RAG_KEYS_FILE``, ``rag.keys``) or, without a keys file,
the one ``RAG_API_KEY`` that write routes need.

    keys file  the request carries            it may
    no         anything                       read every collection
    no         Bearer RAG_API_KEY (or no key  also write and administer (create, drop)
               is configured)
    yes        no key, or an unknown one      GET /health (liveness only), GET /, the API docs;
                                              anything else is 401 before its body is read
    yes        a key                          what the key's grants say

A collection the caller may not read is answered exactly like one that does not exist (404,
``no collection 'x'``), so neither its name nor its existence leaks; one it may read but not
write or administer is 403 ``forbidden``.

The keys file is read at startup (a bad file stops it: ``ConfigError``) and again whenever it
changes (one ``stat`` per request), so ``rag keys add``/``remove`` take effect without a restart.
A file that turns bad or disappears while serving locks every route (and says so in the log)
rather than keep a key someone meant to revoke. Nothing here logs a secret or a header.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError, NotFoundError
from rag.keys import RIGHTS, Key, Keys
from rag.store.collections import DEFAULT
from server.errors import ApiError
from server.limits import authorized, is_upload, is_write

__all__ = ["PUBLIC_PATHS", "Access", "Caller", "no_collection"]

log = logging.getLogger("wenda.server")
PUBLIC_PATHS = frozenset({"/health", "/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_NEEDS_KEY = "this route needs Authorization: Bearer <API key>"
_NEEDS_API_KEY = "this route needs Authorization: Bearer <RAG_API_KEY>"


def no_collection(name: str) -> str:
    """The one message for a collection that does not exist *or* that the caller may not read."""
    return f"no collection {name!r}"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from. With a keys file (``scoped``): its key, or None; without one:
    whether it may write (``writer``: it carries RAG_API_KEY, or none is configured)."""

    key: Key | None = None
    scoped: bool = False
    writer: bool = True

    def can(self, right: str, collection: str) -> bool:
        if self.scoped:
            return self.key is not None and self.key.can(right, collection)
        return right == "read" or self.writer

    def rights(self, collection: str) -> list[str]:
        """``["read", "write"]``: every right held on ``collection``, implied ones included."""
        return [r for r in RIGHTS if self.can(r, collection)]

    def readable(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.can("read", n)]

    def is_admin(self) -> bool:
        """May create collections and see them all (admin on ``*``, or the writer without keys)."""
        if self.scoped:
            return self.key is not None and self.key.is_admin()
        return self.writer

    def require(self, right: str, collection: str) -> None:
        """401 without a usable key, 404 (``no collection``) if it may not read ``collection``,
        403 if it may read but not ``right``."""
        if self.scoped and self.key is None:
            raise ApiError(401, "unauthorized", _NEEDS_KEY)
        if not self.can("read", collection):
            raise NotFoundError(no_collection(collection))
        if not self.can(right, collection):
            raise self.denied(f"{right} collection {collection!r}")

    def denied(self, what: str) -> ApiError:
        """The refusal of something this caller may not do: 401 asking for the key it lacks,
        or 403 when its key is known but not allowed ``what``."""
        if not self.scoped:
            return ApiError(401, "unauthorized", _NEEDS_API_KEY)
        if self.key is None:
            return ApiError(401, "unauthorized", _NEEDS_KEY)
        return ApiError(403, "forbidden", f"this key may not {what}")


class Access:
    """The server's keys: ``caller`` for one request's ``Authorization`` header, ``refusal`` for
    the check made before a body is read (``server.limits.BodyLimit``)."""

    def __init__(self, api_key: str | None, keys_file: Path | None) -> None:
        self.api_key = api_key or None
        self.keys_file = keys_file
        self._keys = Keys(())  # authenticates nobody until the file is read
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) of the file read
        self._lock = threading.Lock()

    @property
    def scoped(self) -> bool:
        return self.keys_file is not None

    def load(self) -> None:
        """Read the keys file now (at startup): ``ConfigError`` if it is missing or bad."""
        if self.keys_file is not None:
            with self._lock:
                self._seen = _signature(self.keys_file)
                self._keys = Keys.load(self.keys_file)

    def keys(self) -> Keys:
        """The keys as the file says now: re-read when it changed since it was last read."""
        assert self.keys_file is not None
        seen = _signature(self.keys_file)
        if seen != self._seen:
            with self._lock:
                if seen != self._seen:
                    self._reload(seen)
        return self._keys

    def _reload(self, seen: tuple[int, int, int] | None) -> None:
        assert self.keys_file is not None
        try:
            keys = Keys.load(self.keys_file)
        except ConfigError as exc:  # locked until the file is fixed, never back to older keys
            log.error("%s; every route that needs a key is refused until it is fixed", exc)
            keys = Keys(())
        else:
            log.info("keys file %s reloaded: %d keys", self.keys_file, len(keys.keys))
        self._keys, self._seen = keys, seen

    def caller(self, authorization: str | None) -> Caller:
        if self.keys_file is None:
            return Caller(writer=authorized(authorization or "", self.api_key))
        return Caller(self.keys().authenticate(authorization), scoped=True, writer=False)

    def refusal(self, method: str, path: str, authorization: str) -> tuple[int, str, str] | None:
        """(status, code, message) of a request refused before its body is read, or None: with
        keys, anything but the public routes without a valid key (401), and an upload into a
        collection the key may not write (404 or 403, as the route would say after reading it);
        without keys, a write route without RAG_API_KEY (401)."""
        if self.keys_file is not None:
            if method == "OPTIONS" or (method in ("GET", "HEAD") and path in PUBLIC_PATHS):
                return None
            key = self.keys().authenticate(authorization)
            if key is None:
                return 401, "unauthorized", _NEEDS_KEY
            if is_upload(method, path):
                name = path.split("/")[2] if path.startswith("/collections/") else DEFAULT
                if not key.can("read", name):
                    return 404, "not_found", no_collection(name)
                if not key.can("write", name):
                    return 403, "forbidden", f"this key may not write collection {name!r}"
            return None
        if is_write(method, path) and not authorized(authorization, self.api_key):
            return 401, "unauthorized", _NEEDS_API_KEY
        return None


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: an atomic replace (``rag keys``) is a new inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
