"""An SQL store made before codespecs and buffers moved into it (schema version 4) gains the
registry tables when opened, its runs untouched."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from runyard.model.registry import Buffer
from runyard.stores import open_store
from runyard.stores.sqlschema import SCHEMA_VERSION
from runyard.testing.factories import make_run

REGISTRY_TABLES = ("buffer_chunks", "buffers", "codespecs", "registry_versions")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_store_without_the_registry_is_upgraded(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite://{tmp_path}/runyard.db" if kind == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    store = open_store(url)
    run = store.create_run(make_run())
    store.close()
    as_version_4(kind, url, tmp_path / "runyard.db")
    if kind == "sqlite":
        from runyard.stores.sqlite import SqliteStore

        store = SqliteStore(tmp_path / "runyard.db")  # (not the one this process has open)
    else:
        from runyard.stores.postgres import PostgresStore

        store = PostgresStore(url)
    try:
        assert store.add_codespec("hello", "d", {"command": ["true"]}, 1.0)[0].version == 1
        assert store.create_buffer(Buffer(id="b1", created=1.0)).id == "b1"
        assert store.get_run(run.id) == run
    finally:
        store.close()
    assert version_of(kind, url, tmp_path / "runyard.db") == SCHEMA_VERSION


def connect(kind: str, url: str, path: Path) -> Any:
    if kind == "sqlite":
        return sqlite3.connect(path, isolation_level=None)
    import psycopg

    return psycopg.connect(url, autocommit=True)


def as_version_4(kind: str, url: str, path: Path) -> None:
    """Make the store what runyard made at schema version 4: no registry tables."""
    with contextlib.closing(connect(kind, url, path)) as conn:
        for table in REGISTRY_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE runyard_schema SET version = 4")


def version_of(kind: str, url: str, path: Path) -> int:
    with contextlib.closing(connect(kind, url, path)) as conn:
        return int(conn.execute("SELECT MAX(version) FROM runyard_schema").fetchone()[0])
