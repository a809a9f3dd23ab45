"""``rag collections`` and ``rag keys``: the command groups that administer collections and API
keys. Thin like ``rag.cli``: the work is ``rag.store.collections`` and ``rag.keys``; a ``RagError``
becomes one line and exit 1 in ``rag.cli.main``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rag.config import Settings
from rag.errors import ConfigError, NotFoundError

__all__ = ["collections_app", "keys_app"]

collections_app = typer.Typer(help="Named collections (knowledge bases) under RAG_INDEX_DIR.",
                              no_args_is_help=True)
keys_app = typer.Typer(help="API keys with per-collection rights, in RAG_KEYS_FILE.", no_args_is_help=True)
err = Console(stderr=True)
out = Console(highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
FileOpt = Annotated[Path | None, typer.Option("--file", help="the keys file (default: RAG_KEYS_FILE)")]


# ---- collections --------------------------------------------------------------------------------
@collections_app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Every collection with its numbers of documents and chunks (default first)."""
    from rag.models.embed import load_embedder
    from rag.store.collections import list_collections, open_collection

    settings = Settings()
    rows: list[dict[str, Any]] = []
    if settings.index_dir.is_dir() or settings.location().database_url:  # listing creates no index
        embedder = load_embedder(settings.embedder)
        for name in list_collections(settings.location()):
            stats = open_collection(settings.location(), name, embedder).stats()
            rows.append({"name": name, "documents": stats["documents"], "chunks": stats["chunks"]})
    else:
        rows.append({"name": "default", "documents": 0, "chunks": 0})
    if json_:
        sys.stdout.write(json.dumps({"collections": rows}, ensure_ascii=False) + "\n")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        out.print(f"{r['name']:<{width}}  {r['documents']:>6} documents  {r['chunks']:>7} chunks")


@collections_app.command()
def create(name: str) -> None:
    """Create an empty collection (`rag ingest --collection NAME` also creates one)."""
    from rag.models.embed import load_embedder
    from rag.store.collections import create_collection

    settings = Settings()
    create_collection(settings.location(), name, load_embedder(settings.embedder))
    out.print(f"created collection {name!r}: add documents with `rag ingest --collection {name} PATH`")


@collections_app.command()
def drop(name: str, yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Delete a collection and every document in it (asks you to type its name)."""
    from rag.store.collections import DEFAULT, check_name, drop_collection, exists

    settings = Settings()
    if check_name(name) == DEFAULT or not exists(settings.location(), name):
        drop_collection(settings.location(), name)  # raises the library's refusal or NotFoundError
    if not yes:
        typed = typer.prompt(f"This deletes collection {name!r} and every document in it. "
                             "Type its name to confirm", default="", show_default=False)
        if typed.strip() != name:
            err.print("not dropped: the name did not match")
            raise typer.Exit(1)
    drop_collection(settings.location(), name)
    out.print(f"dropped collection {name!r}")


# ---- keys ---------------------------------------------------------------------------------------
def _keys_file(file: Path | None) -> Path:
    path = file or Settings().keys_file
    if path is None:
        raise ConfigError("no keys file: set RAG_KEYS_FILE (the server reads it) or pass --file PATH")
    return path


@keys_app.command()
def add(
    name: str,
    grant: Annotated[list[str], typer.Option(
        "--grant", help="collection:rights, repeatable: hr:read, policy:read,write, '*:admin'")],
    file: FileOpt = None,
) -> None:
    """Add a key and print its secret, once: only its hash is stored."""
    from rag.keys import add_key, parse_grants

    path = _keys_file(file)
    secret = add_key(path, name, parse_grants(grant))
    sys.stdout.write(secret + "\n")  # alone on stdout: SECRET=$(rag keys add ...) works
    err.print(f"key {name!r} added to {path}. Copy the secret above now: it will not be shown again "
              "(clients send it as `Authorization: Bearer <secret>`).")


@keys_app.command("list")
def list_keys_(json_: JsonOpt = False, file: FileOpt = None) -> None:
    """Each key's name, secret prefix and rights (never a secret or a hash)."""
    from rag.keys import list_keys

    path = _keys_file(file)
    keys = list_keys(path)
    if json_:
        sys.stdout.write(json.dumps({"keys": keys}, ensure_ascii=False) + "\n")
        return
    if not keys:
        err.print(f"no keys in {path}")
    for k in keys:
        grants = " ".join(f"{c}:{','.join(r)}" for c, r in sorted(k["collections"].items()))
        out.print(f"{k['name']}  {(k['prefix'] or '') + '…':<9} {grants}")


@keys_app.command()
def remove(name: str, file: FileOpt = None) -> None:
    """Remove a key from the keys file."""
    from rag.keys import remove_key

    path = _keys_file(file)
    if not remove_key(path, name):
        raise NotFoundError(f"no key {name!r} in {path}")
    out.print(f"removed key {name!r}")
