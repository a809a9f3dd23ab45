"""Which documents a question may draw on: ``Filter`` (doc ids, a path prefix, tags any/all).

A filter narrows retrieval itself (``Index.chunk_ids`` → both the dense and the BM25 search),
never the results afterwards: k passages come back whenever k matching ones exist, and the
refusal judge sees only passages the filter allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rag.errors import InputError

__all__ = ["DocumentTags", "Filter", "clean_tags"]

_MAX_TAG = 64


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as stored: stripped, no empties or duplicates, sorted; ``InputError`` on bad ones."""
    out = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise InputError(f"a tag must be text, not {type(tag).__name__}")
        tag = " ".join(tag.split())
        if len(tag) > _MAX_TAG or any(c in tag for c in ",[]\"'"):
            raise InputError(f"invalid tag {tag[:80]!r}: at most {_MAX_TAG} characters, no , [ ] or quotes")
        if tag:
            out.add(tag)
    return tuple(sorted(out))


@dataclass(frozen=True)
class DocumentTags:
    """What a filter looks at in one document."""

    doc_id: str
    source: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Filter:
    doc_ids: tuple[str, ...] = ()  # any of these documents
    path_prefix: str = ""  # doc_id or source path starts with it ("policy/2024/")
    tags_any: tuple[str, ...] = ()  # at least one of these tags
    tags_all: tuple[str, ...] = ()  # every one of these tags

    def __bool__(self) -> bool:
        return bool(self.doc_ids or self.path_prefix or self.tags_any or self.tags_all)

    def matches(self, doc: DocumentTags) -> bool:
        if self.doc_ids and doc.doc_id not in self.doc_ids:
            return False
        if self.path_prefix and not (doc.doc_id.startswith(self.path_prefix)
                                     or doc.source.startswith(self.path_prefix)):
            return False
        tags = set(doc.tags)
        if self.tags_any and not tags.intersection(self.tags_any):
            return False
        return tags.issuperset(self.tags_all)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | Filter | None) -> Filter:
        """From JSON (``{"doc_ids": [...], "path_prefix": "...", "tags_any": [...],
        "tags_all": [...]}``); unknown keys and wrong types are ``InputError``."""
        if raw is None or isinstance(raw, Filter):
            return raw or cls()
        if not isinstance(raw, Mapping):
            raise InputError("a filter is an object with doc_ids, path_prefix, tags_any, tags_all")
        unknown = set(raw) - {"doc_ids", "path_prefix", "tags_any", "tags_all"}
        if unknown:
            raise InputError(f"unknown filter field(s): {', '.join(sorted(map(str, unknown)))}")
        lists = {}
        for key in ("doc_ids", "tags_any", "tags_all"):
            value = raw.get(key)
            value = [] if value is None else value
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise InputError(f"filter.{key} must be a list of strings")
            lists[key] = value
        prefix = "" if raw.get("path_prefix") is None else raw["path_prefix"]
        if not isinstance(prefix, str):
            raise InputError("filter.path_prefix must be a string")
        return cls(tuple(dict.fromkeys(lists["doc_ids"])), prefix, clean_tags(lists["tags_any"]),
                   clean_tags(lists["tags_all"]))

    def to_dict(self) -> dict[str, Any]:
        return {"doc_ids": list(self.doc_ids), "path_prefix": self.path_prefix,
                "tags_any": list(self.tags_any), "tags_all": list(self.tags_all)}
