"""Steps in the SQL stores: the upgrade of stores whose steps table has an older layout.

Up to schema version 2 the steps were a WITHOUT ROWID table keyed by (run_id, name) in SQLite
(a heap table with that primary key in PostgreSQL); version 3 keeps them in a rowid table with a
unique (run_id, name) index. A store of each older version is built by hand from a current one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from runyard.errors import StepNotFound
from runyard.model import Attempt, Metric, Status, Step
from runyard.stores import RunStore
from runyard.stores.postgres import PostgresStore
from runyard.stores.sqlite import SqliteStore
from runyard.stores.sqlschema import SCHEMA_VERSION
from runyard.testing import make_run

Execute = Callable[..., list[tuple[Any, ...]]]

V2_STEPS = {  # the steps table up to version 2
    "sqlite": """CREATE TABLE steps (run_id TEXT NOT NULL, name TEXT NOT NULL, created REAL,
        doc TEXT NOT NULL, PRIMARY KEY (run_id, name)) WITHOUT ROWID""",
    "postgresql": """CREATE TABLE steps (run_id TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL, created DOUBLE PRECISION, doc JSON NOT NULL,
        PRIMARY KEY (run_id, name))""",
}
V1_METRICS = """CREATE TABLE metrics (id BIGINT PRIMARY KEY, name TEXT NOT NULL, step BIGINT,
    value DOUBLE PRECISION, time DOUBLE PRECISION)"""


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The backend's name and where its store is (a file, or a fresh database's URL)."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "old.db")
    return "postgresql", str(request.getfixturevalue("pg_url"))


def _open(backend: tuple[str, str]) -> RunStore:
    # the classes themselves: open_store may hand back a store it already has open
    kind, where = backend
    return SqliteStore(where) if kind == "sqlite" else PostgresStore(where)


@contextmanager
def _raw(backend: tuple[str, str]) -> Iterator[Execute]:
    """One transaction on the store's database, bypassing runyard; statements use ``?``."""
    kind, where = backend
    if kind == "sqlite":
        conn = sqlite3.connect(where)
        try:
            with conn:
                yield lambda sql, params=(): conn.execute(sql, params).fetchall()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(where) as pg, pg.transaction(), pg.cursor() as cursor:
        def execute(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            cursor.execute(sql.replace("%", "%%").replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

        yield execute


def _downgrade(backend: tuple[str, str], version: int) -> None:
    """Give the store the steps table of version 2 (and, for 1, the metrics table), same rows."""
    with _raw(backend) as execute:
        rows = execute("SELECT run_id, name, created, doc FROM steps")
        execute("DROP TABLE steps")
        execute(V2_STEPS[backend[0]])
        for row in rows:
            text = row[3] if isinstance(row[3], str) else json.dumps(row[3])
            execute("INSERT INTO steps (run_id, name, created, doc) VALUES (?, ?, ?, ?)",
                    (*row[:3], text))
        execute("ALTER TABLE runs DROP COLUMN internals")  # (version 4's)
        if version == 1:
            execute("DROP TABLE metric_chunks")
            execute(V1_METRICS)
        execute("UPDATE runyard_schema SET version = ?", (version,))


def _steps_layout(backend: tuple[str, str]) -> list[tuple[Any, ...]]:
    """What the database says of the steps table: its SQL, or its keys, indexes, sequence."""
    with _raw(backend) as execute:
        if backend[0] == "sqlite":  # a renamed table's SQL names it in quotes
            rows = execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'steps' "
                           "ORDER BY name")
            return [(t, n, sql and sql.replace('"steps"', "steps")) for t, n, sql in rows]
        keys = execute("SELECT conname, contype FROM pg_constraint "
                       "WHERE conrelid = 'steps'::regclass ORDER BY conname")
        named = execute("SELECT relname, relkind FROM pg_class WHERE relname LIKE 'steps%' "
                        "ORDER BY relname")  # the table, its indexes and sequence
        return [*keys, *named]


def _fill(store: RunStore) -> tuple[list[str], dict[str, list[Step]]]:
    """Runs with steps (one without), as written."""
    runs = [store.create_run(make_run()).id for _ in range(3)]
    steps: dict[str, list[Step]] = {}
    for r, run_id in enumerate(runs[:2]):
        batch = [Step(f"task_{i}", created=100.0 + i, metadata={"pad": "x" * (200 * i), "r": r})
                 for i in range(8)]
        store.upsert_steps(run_id, batch[::-1])  # not in (run_id, name) order
        done = Attempt(1, Status.SUCCEEDED, 1.0, 2.0, inputs={"a": [1, 2]}, outputs={"b": "y"})
        batch[3] = store.upsert_attempt(run_id, "task_3", done)
        steps[run_id] = batch
    steps[runs[2]] = []
    store.append_metrics(runs[0], [Metric("loss", 0.5, 1, 1.0)])
    return runs, steps


@pytest.mark.parametrize("version", [2, 1])
def test_an_older_store_keeps_its_steps_when_upgraded(backend: tuple[str, str],
                                                      version: int) -> None:
    store = _open(backend)
    fresh_layout = _steps_layout(backend)
    runs, steps = _fill(store)
    store.close()
    _downgrade(backend, version)
    assert _steps_layout(backend) != fresh_layout

    store = _open(backend)
    try:
        for run_id, written in steps.items():
            assert store.get_steps(run_id) == written
        assert _steps_layout(backend) == fresh_layout
        with _raw(backend) as execute:
            assert execute("SELECT version FROM runyard_schema") == [(SCHEMA_VERSION,)]
        _still_writable(store, runs, steps)
        with _raw(backend) as execute:
            assert execute("SELECT COUNT(*) FROM steps WHERE run_id = ?", (runs[0],)) == [(0,)]
    finally:
        store.close()


def _still_writable(store: RunStore, runs: list[str], steps: dict[str, list[Step]]) -> None:
    """New steps, updates of old ones and deletes all work on the upgraded table."""
    first, second, empty = runs
    changed = Step("task_0", Status.RUNNING, created=100.0, metadata={"changed": True})
    store.upsert_steps(first, [Step("task_8", created=108.0)])
    store.upsert_step(first, changed)
    store.upsert_attempt(second, "task_3", Attempt(2, Status.FAILED, 3.0, 4.0, "boom"))
    store.upsert_steps(empty, [Step("only", created=1.0)])
    back = store.get_steps(first)
    assert [s.name for s in back] == [f"task_{i}" for i in range(9)]
    assert back[0] == changed and back[1:8] == steps[first][1:]
    assert [a.number for a in store.get_step(second, "task_3").attempts] == [1, 2]
    assert store.get_steps(empty) == [Step("only", created=1.0)]
    with pytest.raises(StepNotFound):
        store.get_step(second, "task_9")
    store.delete_run(first)
    assert len(store.get_steps(second)) == 8


def test_a_current_store_is_opened_without_a_rebuild(backend: tuple[str, str]) -> None:
    store = _open(backend)
    runs, steps = _fill(store)
    store.close()
    with _raw(backend) as execute:
        ids = execute("SELECT id, run_id, name FROM steps ORDER BY id")
    store = _open(backend)
    try:
        with _raw(backend) as execute:
            assert execute("SELECT id, run_id, name FROM steps ORDER BY id") == ids
        assert store.get_steps(runs[1]) == steps[runs[1]]
    finally:
        store.close()


def test_a_batch_of_steps_is_written_in_multi_row_statements(backend: tuple[str, str]
                                                             ) -> None:
    """More steps than one statement holds, and a name given twice in one batch: the last of a
    name wins, none is lost, and a later batch updates the rows in place."""
    store = _open(backend)
    try:
        run = store.create_run(make_run())

        def doc(name: str, status: Status) -> Step:
            return Step(name, status, created=float(int(name[5:])))

        batch = [doc(f"task_{i}", Status.RUNNING) for i in range(450)]
        batch.append(doc("task_7", Status.SUCCEEDED))
        store.upsert_steps(run.id, batch)
        steps = {s.name: s for s in store.get_steps(run.id)}
        assert len(steps) == 450 and steps["task_7"].status is Status.SUCCEEDED
        assert steps["task_449"].status is Status.RUNNING
        store.upsert_steps(run.id, [doc(f"task_{i}", Status.FAILED) for i in range(0, 450, 2)])
        steps = {s.name: s for s in store.get_steps(run.id)}
        assert len(steps) == 450
        assert sum(s.status is Status.FAILED for s in steps.values()) == 225
        assert steps["task_1"].status is Status.RUNNING
    finally:
        store.close()
