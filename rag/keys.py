"""API keys with scopes: which key may read, write or administer which collections.

The keys file (``RAG_KEYS_FILE``) is JSON, written by ``add_key``/``remove_key``::

    {"keys": [{"name": "hr-bot", "hash": "sha256:<64 hex>", "prefix": "wk_AbCd",
               "collections": {"hr": ["read"], "policy": ["read", "write"]}},
              {"name": "ops", "hash": "sha256:<64 hex>", "collections": {"*": ["admin"]}}]}

Rights are ``read``, ``write`` and ``admin``; ``admin`` implies ``write``, which implies ``read``.
``"*"`` grants on every collection, including ones created later; ``admin`` on ``"*"`` is also the
right to create, drop and list all collections (``admin`` on one collection may drop it).

Threat model: the file holds only the SHA-256 of each secret, so reading it (a backup, a
``cat`` in a screen share) gives no usable key; a secret is shown once, by ``add_key``. Nothing
here puts a secret or a hash in a message, a log line or a ``repr``; key names are restricted to
a safe charset so they can be logged. Whoever can *write* the file can grant themselves anything:
protect it like the server's config. Concurrent ``add_key``/``remove_key`` calls may lose one
update (the CLI is the one writer); each write is atomic, so the server never reads half a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rag.errors import ConfigError, InputError
from rag.store.durable import atomic_write

__all__ = ["RIGHTS", "Key", "Keys", "add_key", "list_keys", "parse_grants", "remove_key"]

RIGHTS = ("read", "write", "admin")  # each implies the ones before it
ALL = "*"
_COLLECTION = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HASH = re.compile(r"sha256:[0-9a-fA-F]{64}")
_FIELDS = {"name", "hash", "prefix", "collections"}
_MAX_SECRET = 512  # longer bearer tokens are not ours: do not hash megabytes of header


@dataclass(frozen=True)
class Key:
    """A key's name and grants (collection or ``"*"`` → rights); it never holds the secret or hash.

    >>> Key("ops", {"*": {"admin"}}).can("read", "hr")
    True
    """

    name: str
    collections: Mapping[str, frozenset[str]]

    def __post_init__(self) -> None:
        frozen = {c: frozenset(rights) for c, rights in self.collections.items()}
        object.__setattr__(self, "collections", MappingProxyType(frozen))

    def can(self, right: str, collection: str) -> bool:
        """May this key use ``right`` on ``collection`` (directly, by implication, or by ``*``)?"""
        if right not in RIGHTS:
            raise InputError(f"unknown right {right!r}: expected one of {', '.join(RIGHTS)}")
        held = self.collections.get(collection, frozenset()) | self.collections.get(ALL, frozenset())
        return any(RIGHTS.index(h) >= RIGHTS.index(right) for h in held if h in RIGHTS)

    def readable(self, names: Iterable[str]) -> list[str]:
        """The collections among ``names`` this key may read, in the given order."""
        return [n for n in names if self.can("read", n)]

    def is_admin(self) -> bool:
        """``admin`` on ``*``: may create, drop and list every collection."""
        return "admin" in self.collections.get(ALL, frozenset())


@dataclass(frozen=True)
class Keys:
    """The keys of one file. ``_digests[i]`` is the SHA-256 of ``keys[i]``'s secret (not in repr);
    ``Keys(keys)`` without digests authenticates nobody."""

    keys: tuple[Key, ...]
    _digests: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def load(cls, path: Path) -> Keys:
        """Read and validate a keys file; ``ConfigError`` names the file and the key at fault."""
        entries = _read(path, missing_ok=False)
        keys = tuple(Key(e["name"], {c: frozenset(r) for c, r in e["collections"].items()})
                     for e in entries)
        return cls(keys, tuple(bytes.fromhex(e["hash"].split(":", 1)[1]) for e in entries))

    def authenticate(self, authorization: str | None) -> Key | None:
        """The key whose secret an ``Authorization: Bearer <secret>`` header value carries, or None."""
        scheme, _, secret = (authorization or "").strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > _MAX_SECRET:
            return None
        digest = _digest(secret)
        # Compare against every key, without stopping at a match, so timing does not depend on
        # which key (or how many) matched; keys files are small, so the scan costs nothing.
        found = None
        for key, stored in zip(self.keys, self._digests, strict=False):
            if hmac.compare_digest(stored, digest):
                found = key
        return found


def add_key(path: Path, name: str, grants: Mapping[str, Iterable[str]]) -> str:
    """Add a key named ``name`` with ``grants`` to the file (created 0o600 if missing) and return
    its secret: the only time it is ever visible."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError("a key name is 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    collections = {c: sorted(r, key=RIGHTS.index) for c, r in _check_grants(grants, InputError).items()}
    entries = _read(path, missing_ok=True)
    if any(e["name"] == name for e in entries):
        raise InputError(f"{path}: a key named {name!r} already exists")
    secret = "wk_" + secrets.token_urlsafe(32)
    entries.append({"name": name, "hash": "sha256:" + _digest(secret).hex(), "prefix": secret[:7],
                    "collections": collections})
    _write(path, entries)
    return secret


def remove_key(path: Path, name: str) -> bool:
    """Remove the key named ``name``; False if there is no such key (or no file)."""
    entries = _read(path, missing_ok=True)
    kept = [e for e in entries if e["name"] != name]
    if len(kept) == len(entries):
        return False
    _write(path, kept)
    return True


def list_keys(path: Path) -> list[dict[str, Any]]:
    """Each key's name, prefix and collections with rights; never its hash. [] without a file."""
    return [{"name": e["name"], "prefix": e.get("prefix"),
             "collections": {c: sorted(r, key=RIGHTS.index) for c, r in e["collections"].items()}}
            for e in _read(path, missing_ok=True)]


def parse_grants(specs: Iterable[str]) -> dict[str, set[str]]:
    """Grants from CLI strings ``collection:right[,right...]`` (e.g. ``hr:read``, ``*:admin``)."""
    if isinstance(specs, str):
        raise InputError("grants are a list of 'collection:rights' strings, not one string")
    grants: dict[str, set[str]] = {}
    for spec in specs:
        collection, sep, rights = spec.strip().partition(":")
        if not sep:
            raise InputError(f"grant {spec!r}: expected 'collection:right[,right...]', e.g. 'hr:read'")
        parsed = _check_grants({collection: [r.strip() for r in rights.split(",")]}, InputError)
        grants.setdefault(collection, set()).update(parsed[collection])
    return grants


def _digest(secret: str) -> bytes:
    # Secrets are 256-bit random, not passwords: a fast hash is right, a slow KDF would add nothing.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _check_grants(grants: Any, error: type[Exception], where: str = "") -> dict[str, set[str]]:
    """Validated grants as collection → rights; raises ``error`` with ``where`` as the context."""
    if not isinstance(grants, Mapping) or not grants:
        raise error(f"{where}collections must map at least one collection to its rights")
    checked: dict[str, set[str]] = {}
    for collection, rights in grants.items():
        if not isinstance(collection, str) or not (collection == ALL or _COLLECTION.fullmatch(collection)):
            raise error(f"{where}bad collection {str(collection)[:70]!r}: expected '*' or "
                        "[a-z0-9][a-z0-9_-]{0,63}")
        if isinstance(rights, str | bytes) or not isinstance(rights, Iterable):
            raise error(f"{where}the rights of {collection!r} must be a list")
        rights = list(rights)
        bad = [r for r in rights if r not in RIGHTS]
        if not rights or bad:
            shown = repr(bad[0])[:40] if bad else "none"
            raise error(f"{where}collection {collection!r}: bad right {shown}: expected one or more "
                        f"of {', '.join(RIGHTS)}")
        checked[collection] = set(rights)
    return checked


def _read(path: Path, *, missing_ok: bool) -> list[dict[str, Any]]:
    """The validated entries of a keys file (no file: [] if ``missing_ok``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return []
        raise ConfigError(f"keys file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"keys file {path}: cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:  # its message has a position, not the text
        raise ConfigError(f"keys file {path}: not JSON ({e})") from None
    if not isinstance(data, dict) or set(data) != {"keys"} or not isinstance(data["keys"], list):
        raise ConfigError(f'keys file {path}: expected {{"keys": [...]}} and nothing else')
    names: set[str] = set()
    owners: dict[str, str] = {}
    for i, entry in enumerate(data["keys"], 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"keys file {path}: key #{i} has no valid name (1-64 of A-Z a-z 0-9 . _ -)")
        where = f"keys file {path}: key {name!r}: "
        if name in names:
            raise ConfigError(f"{where}the name is used twice")
        names.add(name)
        if extra := set(entry) - _FIELDS:
            raise ConfigError(f"{where}unknown fields {sorted(str(x)[:40] for x in extra)}")
        if not isinstance(entry.get("hash"), str) or not _HASH.fullmatch(entry["hash"]):
            raise ConfigError(f"{where}hash must be 'sha256:' followed by 64 hex digits")
        if "prefix" in entry and not (isinstance(entry["prefix"], str) and len(entry["prefix"]) <= 16):
            raise ConfigError(f"{where}prefix must be a string of at most 16 characters")
        _check_grants(entry.get("collections"), ConfigError, where)
        digest = entry["hash"].lower()
        if digest in owners:
            raise ConfigError(f"{where}has the same secret as key {owners[digest]!r}")
        owners[digest] = name
    return data["keys"]


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the file atomically, keeping its mode (0o600 for a new file)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    text = json.dumps({"keys": entries}, ensure_ascii=False, indent=2) + "\n"

    def write(tmp: str) -> None:
        os.chmod(tmp, mode)
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(path, write)
