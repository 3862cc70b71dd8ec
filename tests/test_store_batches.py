"""Batches appended once per key when writers race, a crashed batch in the chunked store,
and an SQL store of schema version 5 (before batch keys and tokens) opened by this runyard.

The races are real processes released together (``together.race``) on every store several
processes share; the in-memory store, which one process holds, races two threads instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from runyard.model import Event, Metric
from runyard.stores import MetricColumns, RunStore, chunkbatch, open_store
from runyard.testing import make_run
from test_registry_upgrade import connect, version_of
from together import race

KEYS = 30

# a writer that says "ready", waits for a line on stdin, appends batch i under key-i for
# every i, and prints whether each was appended
WRITER = textwrap.dedent("""
    import json, sys
    from runyard.model import Event
    from runyard.stores import MetricColumns, open_store
    store = open_store(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    applied = [store.append_batch(sys.argv[2], f"key-{i}",
                                  metrics=MetricColumns(["x", "y"], [float(i), -i], [i, i],
                                                        [1.0, 1.0]),
                                  events=[Event(float(i), f"batch {i}", "info")])
               for i in range(int(sys.argv[3]))]
    print(json.dumps(applied), flush=True)
""")


def write_all(store: RunStore, run_id: str) -> list[bool]:
    return [store.append_batch(run_id, f"key-{i}",
                               metrics=MetricColumns(["x", "y"], [float(i), -i], [i, i],
                                                     [1.0, 1.0]),
                               events=[Event(float(i), f"batch {i}", "info")])
            for i in range(KEYS)]


def check_once(store: RunStore, run_id: str, outcomes: list[list[bool]]) -> None:
    for i in range(KEYS):
        assert sorted(o[i] for o in outcomes) == [False, True], i  # one writer appended it
    assert sorted(m.value for m in store.read_metrics(run_id, "x")) == list(map(float, range(KEYS)))
    assert len(store.read_metrics(run_id)) == 2 * KEYS
    assert sorted(e.message for e in store.read_events(run_id)) == sorted(
        f"batch {i}" for i in range(KEYS))


def test_two_processes_racing_one_key_append_it_once(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    run = store.create_run(make_run())
    if store_url.startswith("memory:"):
        outcomes = race_threads(store, run.id)
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        outputs = race(WRITER, [store_url, run.id, str(KEYS)], 2, cwd=tmp_path, env=env)
        outcomes = [json.loads(out) for out in outputs]
    check_once(store, run.id, outcomes)


def race_threads(store: RunStore, run_id: str) -> list[list[bool]]:
    barrier = threading.Barrier(2)
    outcomes: list[list[bool]] = []

    def write() -> None:
        barrier.wait()
        outcomes.append(write_all(store, run_id))

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2
    return outcomes


# -- a chunked store's batch whose writer died part-way -------------------------------------------
def crashed_batch(tmp_path: Path, earlier: int = 0) -> tuple[RunStore, str, Path]:
    """A run whose last batch was recorded and half written, as a killed writer leaves it,
    after ``earlier`` whole batches."""
    store = open_store(f"chunked://{tmp_path}/store")
    run = store.create_run(make_run())
    for i in range(earlier):
        store.append_batch(run.id, f"earlier-{i:0100}")
    store.append_metrics(run.id, [Metric("x", 0.0, 0, 1.0)])
    folder = tmp_path / "store" / run.id
    lines = b'["x",1.0,1,2.0]\n["x",2.0,2,3.0]\n'
    said = b'[2.0,"epoch","info"]\n'
    chunkbatch.append(folder, "half", ("metrics.jsonl", "events.jsonl", "logs.jsonl"),
                      [lines, said, b""])
    metrics = folder / "metrics.jsonl"
    os.truncate(metrics, metrics.stat().st_size - 7)  # the second row torn, events whole
    return store, run.id, folder


@pytest.mark.parametrize("earlier", [0, 100])
def test_a_batch_cut_short_is_undone_and_can_be_sent_again(tmp_path: Path, earlier: int
                                                           ) -> None:
    store, run_id, _ = crashed_batch(tmp_path, earlier)
    again = MetricColumns(["x", "x"], [1.0, 2.0], [1, 2], [2.0, 3.0])
    assert store.append_batch(run_id, "half", metrics=again, events=[Event(2.0, "epoch")])
    assert [m.value for m in store.read_metrics(run_id)] == [0.0, 1.0, 2.0]
    assert store.read_events(run_id) == [Event(2.0, "epoch", "info")]
    assert not store.append_batch(run_id, "half", metrics=again)


@pytest.mark.parametrize("earlier", [0, 100])
def test_a_plain_append_after_a_batch_cut_short_undoes_it_first(tmp_path: Path, earlier: int
                                                                ) -> None:
    store, run_id, folder = crashed_batch(tmp_path, earlier)
    store.append_metrics(run_id, [Metric("x", 9.0, 9, 9.0)])
    assert [m.value for m in store.read_metrics(run_id)] == [0.0, 9.0]
    assert store.read_events(run_id) == []
    assert len(chunkbatch.keys(folder)) == earlier and "half" not in chunkbatch.keys(folder)


def test_a_whole_batch_is_kept_by_the_next_writer(tmp_path: Path) -> None:
    store = open_store(f"chunked://{tmp_path}/store")
    run = store.create_run(make_run())
    assert store.append_batch(run.id, "one", metrics=MetricColumns(["x"], [1.0], [1], [1.0]))
    store.append_events(run.id, [Event(1.0, "after")])
    assert store.append_batch(run.id, "two", events=[Event(2.0, "two")])
    assert [m.value for m in store.read_metrics(run.id)] == [1.0]
    assert [e.message for e in store.read_events(run.id)] == ["after", "two"]


# -- an SQL store made before batch keys and tokens ---------------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_version_5_store_gains_batch_keys_and_tokens(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite://{tmp_path}/runyard.db" if kind == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    store = open_store(url)
    run = store.create_run(make_run())
    store.append_metrics(run.id, [Metric("x", 1.0, 0, 1.0)])
    store.close()
    with contextlib.closing(connect(kind, url, tmp_path / "runyard.db")) as conn:
        for table in ("batch_keys", "tokens"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE runyard_schema SET version = 5")
    store = reopened(kind, url, tmp_path)
    try:
        assert store.append_batch(run.id, "k", metrics=MetricColumns(["x"], [2.0], [1], [2.0]))
        assert not store.append_batch(run.id, "k")
        assert [m.value for m in store.read_metrics(run.id)] == [1.0, 2.0]
        assert store.list_tokens() == []
    finally:
        store.close()
    assert version_of(kind, url, tmp_path / "runyard.db") == 6


def reopened(kind: str, url: str, tmp_path: Path) -> RunStore:
    """A new store object (not the one this process has open) on ``url``."""
    if kind == "sqlite":
        from runyard.stores.sqlite import SqliteStore

        return SqliteStore(tmp_path / "runyard.db")
    from runyard.stores.postgres import PostgresStore

    return PostgresStore(url)


# -- series bounds without numpy ------------------------------------------------------------------
NO_NUMPY = textwrap.dedent("""
    import sys

    class NoNumpy:  # as if numpy were not installed: ``import numpy`` fails
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "numpy":
                raise ImportError("numpy is not installed here")

    sys.meta_path.insert(0, NoNumpy())
    import pytest
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-k", "series and sqlite",
                          "tests/test_store_contract.py"]))
""")


def test_series_bounds_hold_without_numpy() -> None:
    """The SQL stores sift bounded series with numpy when it is there, else in Python: the
    contract's series tests pass both ways."""
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", NO_NUMPY], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
