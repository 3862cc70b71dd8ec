"""Metrics in the SQL stores: chunks, order across names, checks, and the version 1 upgrade."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.errors import ValidationError
from runyard.model import Metric
from runyard.stores import RunStore, open_store
from runyard.stores.base import summarise
from runyard.stores.sqlite import SqliteStore
from runyard.stores.sqlmetrics import CHUNK
from runyard.stores.sqlschema import SCHEMA_VERSION, SPAN
from runyard.testing import make_run


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path}/store/runyard.db"
    else:
        url = str(request.getfixturevalue("pg_url"))
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()


def test_batches_larger_than_a_chunk_keep_their_order(store: RunStore) -> None:
    run = store.create_run(make_run())
    n = CHUNK + 1000
    one_name = [Metric("loss", float(i), i, float(i)) for i in range(n)]
    pattern = [Metric(f"m{i % 3}", i / 3, i // 3, 1.0) for i in range(3 * n)]  # evenly spaced
    irregular = [Metric("a" if i % 7 < 3 else "b", -float(i), None if i % 5 else i, 2.0)
                 for i in range(2 * CHUNK + 11)]  # listed positions, some steps None
    for batch in (one_name, pattern, irregular):
        store.append_metrics(run.id, batch)
    everything = one_name + pattern + irregular
    assert store.read_metrics(run.id) == everything
    assert store.read_metrics(run.id, "b") == [m for m in everything if m.name == "b"]
    assert store.read_metrics(run.id, "m2") == pattern[2::3]
    assert store.metric_summaries(run.id) == summarise(everything)
    store.delete_run(run.id)
    assert store.list_runs() == []


def test_steps_that_are_all_none_or_mixed_round_trip(store: RunStore) -> None:
    run = store.create_run(make_run())
    batch = [Metric("none", 1.0, None, 1.0), Metric("mixed", 2.0, None, 2.0),
             Metric("mixed", 3.0, 2**62, 3.0), Metric("none", 4.0, None, 4.0),
             Metric("mixed", 5.0, -3, 5.0)]
    store.append_metrics(run.id, batch)
    store.append_metrics(run.id, batch[:1])
    assert store.read_metrics(run.id) == [*batch, batch[0]]
    summaries = {s.name: s for s in store.metric_summaries(run.id)}
    assert (summaries["mixed"].last_step, summaries["none"].last_step) == (-3, None)
    assert summaries["none"].count == 3


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (Metric("a", 1.0, 1.5, 1.0), "step 1.5"),
        (Metric("a", 1.0, 2**64, 1.0), "step beyond 64-bit"),
        (Metric("a", 1.0, 1, "now"), "time 'now'"),  # type: ignore[arg-type]
        (Metric("a", 10**400, 1, 1.0), "too large"),
        (("a", 1.0), "metrics are .name, value, step, time. records"),
    ],
)
def test_bad_steps_times_and_records_write_nothing(store: RunStore, bad: Any,
                                                   words: str) -> None:
    run = store.create_run(make_run())
    with pytest.raises(ValidationError, match=words):
        store.append_metrics(run.id, [Metric("a", 1.0, 0, 1.0), bad])
    assert store.read_metrics(run.id) == []


def test_an_empty_batch_writes_nothing(store: RunStore) -> None:
    run = store.create_run(make_run())
    store.append_metrics(run.id, [])
    store.append_metrics(run.id, [Metric("a", 1.0, 0, 1.0)])
    assert store.read_metrics(run.id) == [Metric("a", 1.0, 0, 1.0)]


# -- schema version 1: one row per value ---------------------------------------------------------
V1_METRICS = """CREATE TABLE metrics (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
    step INTEGER, value REAL, time REAL)"""


def _make_version_1(path: Path, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """Turn the store at ``path`` back into version 1, holding ``rows`` per run id."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TABLE metric_chunks")
        conn.execute(V1_METRICS)
        for run_id, values in rows.items():
            [(seq,)] = conn.execute("SELECT seq FROM runs WHERE id = ?", (run_id,))
            conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                             [(seq * SPAN + i, *row) for i, row in enumerate(values)])
        conn.execute("UPDATE runyard_schema SET version = 1")
    conn.close()


def test_a_version_1_store_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path)
    run, other, empty = (store.create_run(make_run()) for _ in range(3))
    store.close()
    rows = [("ab"[i % 2], None if i == 3 else i, None if i == 4 else i / 2, float(i))
            for i in range(10)]
    _make_version_1(path, {run.id: rows, other.id: [("x", 0, 1.0, 1.0)]})
    store = SqliteStore(path)
    back = store.read_metrics(run.id)
    assert [(m.name, m.step, m.time) for m in back] == [(n, s, t) for n, s, _, t in rows]
    assert math.isnan(back[4].value) and back[5].value == 2.5
    store.append_metrics(run.id, [Metric("a", 9.0, 10, 10.0)])
    assert store.read_metrics(run.id, "a")[-1] == Metric("a", 9.0, 10, 10.0)
    assert store.read_metrics(other.id) == [Metric("x", 1.0, 0, 1.0)]
    assert store.read_metrics(empty.id) == []
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM runyard_schema").fetchall() == [(SCHEMA_VERSION,)]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "metrics" not in tables and "metric_chunks" in tables
    conn.close()
