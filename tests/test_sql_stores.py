"""The SQL stores beyond the contract: concurrent processes, crashes, special floats, tails."""

from __future__ import annotations

import math
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runyard.errors import StoreError
from runyard.model import Event, Kind, LogLine, Metric, RunRecord, Status
from runyard.stores import RunStore, open_store
from runyard.stores.base import MetricSummary, RunFilter
from runyard.stores.memory import MemoryStore
from runyard.stores.sqlite import SqliteStore
from runyard.testing import make_run
from runyard.testing.strategies import runs as run_strategy

WORKERS = 4
UPDATES = 500


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/store/runyard.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(sql_url: str) -> Iterator[RunStore]:
    opened = open_store(sql_url)
    try:
        yield opened
    finally:
        opened.close()


# -- several processes at once -------------------------------------------------------------------
# Workers run as fresh interpreters that import only runyard; each waits for a line on stdin so
# that all of them start together.
WORKER = """
import sys
from runyard.model import LogLine, Metric, RunRecord, Step, new_id
from runyard.stores import open_store

mode, url, run_id, worker = sys.argv[1:5]
sys.stdin.readline()
store = open_store(url)
if mode == "create":
    store.create_run(RunRecord(id=new_id(), name=f"run-{new_id().lower()}"))
elif mode == "update":
    for i in range(int(sys.argv[5])):
        key = f"w{worker}-{i}"
        if i % 4 == 0:
            store.upsert_step(run_id, Step(key, created=float(i)))
        elif i % 4 == 1:
            store.add_tags(run_id, [key])
        elif i % 4 == 2:
            store.merge_metadata(run_id, {key: i})
        else:
            store.append_metrics(run_id, [Metric(f"w{worker}", float(i), i, float(i))])
elif mode == "endless":
    i = 0
    while True:
        store.append_metrics(run_id, [Metric("loss", float(j), i) for j in range(100)])
        store.merge_metadata(run_id, {f"k{i}": i})
        store.append_logs(run_id, [LogLine(float(i), f"line {i}")])
        i += 1
store.close()
"""


def _start(mode: str, url: str, run_id: str = "", count: int = 1) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, mode, url, run_id, str(w), str(UPDATES)],
                         stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        for w in range(count)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    return procs


def _finish(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()


@pytest.mark.slow
def test_processes_updating_one_run_lose_nothing(store: RunStore, sql_url: str) -> None:
    run = store.create_run(make_run(tags=frozenset({"initial"}), metadata={"initial": True}))
    _finish(_start("update", sql_url, run.id, WORKERS))
    per_kind = UPDATES // 4 * WORKERS
    final = store.get_run(run.id)
    assert len(final.tags) == per_kind + 1 and "initial" in final.tags
    assert len(final.metadata) == per_kind + 1 and final.metadata["initial"] is True
    assert len(store.get_steps(run.id)) == per_kind
    metrics = store.read_metrics(run.id)
    assert len(metrics) == per_kind
    for w in range(WORKERS):  # each writer's values, in the order it wrote them
        steps = [m.step for m in metrics if m.name == f"w{w}"]
        assert steps == list(range(3, UPDATES, 4))


def test_processes_opening_a_new_store_at_once(sql_url: str) -> None:
    _finish(_start("create", sql_url, count=WORKERS))
    store = open_store(sql_url)
    assert store.count_runs() == WORKERS
    store.close()


def test_threads_sharing_one_store(store: RunStore) -> None:
    run = store.create_run(make_run())

    def work(t: int) -> None:
        for i in range(50):
            store.merge_metadata(run.id, {f"t{t}-{i}": i})
            store.append_events(run.id, [Event(float(i), f"t{t}")])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.get_run(run.id).metadata) == 400
    assert len(store.read_events(run.id)) == 400


def _write_after_fork(store: RunStore, run_id: str) -> None:
    store.merge_metadata(run_id, {"child": True})
    store.append_metrics(run_id, [Metric("child", 1.0)])


def test_store_used_after_fork(store: RunStore) -> None:
    run = store.create_run(make_run())
    store.merge_metadata(run.id, {"parent": True})  # the parent's connection is open
    child = multiprocessing.get_context("fork").Process(target=_write_after_fork,
                                                        args=(store, run.id))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    store.merge_metadata(run.id, {"parent-again": True})  # and still usable
    assert store.get_run(run.id).metadata == {"parent": True, "child": True, "parent-again": True}
    assert [m.name for m in store.read_metrics(run.id)] == ["child"]


def test_writer_killed_mid_write_leaves_a_readable_store(sql_url: str, store: RunStore) -> None:
    run = store.create_run(make_run())
    [proc] = _start("endless", sql_url, run.id)
    deadline = time.monotonic() + 60
    while len(store.read_metrics(run.id)) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # wherever it is
    proc.communicate()
    after = open_store(sql_url)
    metrics = after.read_metrics(run.id)
    assert len(metrics) >= 2000 and len(metrics) % 100 == 0  # whole batches only
    after.append_metrics(run.id, [Metric("after", 1.0)])
    after.merge_metadata(run.id, {"after": True})
    assert after.get_run(run.id).metadata["after"] is True
    after.close()
    if sql_url.startswith("sqlite:"):
        conn = sqlite3.connect(sql_url.removeprefix("sqlite://"))
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()


# -- special floats, against the reference store --------------------------------------------------
def _same(a: object, b: object) -> bool:
    nans = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return nans or a == b


def _same_summaries(ours: list[MetricSummary], reference: list[MetricSummary]) -> bool:
    fields = ("count", "last", "last_step", "minimum", "maximum")
    return [s.name for s in ours] == [s.name for s in reference] and all(
        all(_same(getattr(x, f), getattr(y, f)) for f in fields)
        for x, y in zip(ours, reference, strict=True)
    )


def test_nan_and_infinities_round_trip(store: RunStore) -> None:
    run = store.create_run(make_run())
    values = [math.nan, 1.0, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    store.append_metrics(run.id, [Metric("x", v, i, float(i)) for i, v in enumerate(values)])
    store.append_metrics(run.id, [Metric("only-nan", math.nan), Metric("ends-nan", 2.0),
                                  Metric("ends-nan", math.nan, 9)])
    back = store.read_metrics(run.id, "x")
    assert all(_same(m.value, v) for m, v in zip(back, values, strict=True))
    assert [m.step for m in back] == list(range(len(values)))
    summaries = {s.name: s for s in store.metric_summaries(run.id)}
    x = summaries["x"]
    assert math.isnan(x.minimum) and math.isnan(x.maximum)  # the series starts with NaN
    assert (x.count, x.last, x.last_step) == (len(values), values[-1], len(values) - 1)
    assert math.isnan(summaries["only-nan"].last) and math.isnan(summaries["only-nan"].minimum)
    ends = summaries["ends-nan"]
    assert math.isnan(ends.last) and (ends.minimum, ends.maximum, ends.last_step) == (2.0, 2.0, 9)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from("abc"), st.floats(),
                                           st.none() | st.integers(-(2**62), 2**62)),
                                 max_size=6), min_size=1, max_size=4))
def test_metrics_match_the_reference_store(
    store: RunStore, batches: list[list[tuple[str, float, int | None]]]
) -> None:
    reference = MemoryStore()
    run = make_run()
    store.create_run(run)
    reference.create_run(run)
    for batch in batches:
        metrics = [Metric(name, value, step, 1.0) for name, value, step in batch]
        store.append_metrics(run.id, metrics)
        reference.append_metrics(run.id, metrics)
    ours, theirs = store.read_metrics(run.id), reference.read_metrics(run.id)
    assert [(m.name, m.step) for m in ours] == [(m.name, m.step) for m in theirs]
    assert all(_same(m.value, r.value) for m, r in zip(ours, theirs, strict=True))
    assert _same_summaries(store.metric_summaries(run.id), reference.metric_summaries(run.id))
    store.delete_run(run.id)


# -- tails read only the end ----------------------------------------------------------------------
def _best_of(call: Callable[[], object], times: int = 5) -> float:
    best = math.inf
    for _ in range(times):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def test_tail_does_not_read_everything(store: RunStore) -> None:
    run = store.create_run(make_run())
    n = 40_000
    store.append_logs(run.id, [LogLine(float(i), f"line {i}", "stdout", "s") for i in range(n)])
    store.append_events(run.id, [Event(float(i), f"event {i}") for i in range(n)])
    assert [x.text for x in store.read_logs(run.id, tail=2)] == [f"line {n - 2}", f"line {n - 1}"]
    assert store.read_events(run.id, tail=1) == [Event(float(n - 1), f"event {n - 1}")]
    whole = _best_of(lambda: store.read_logs(run.id), times=2)
    tail = _best_of(lambda: store.read_logs(run.id, step="s", tail=5))
    assert tail * 20 < whole, (tail, whole)
    whole = _best_of(lambda: store.read_events(run.id), times=2)
    tail = _best_of(lambda: store.read_events(run.id, tail=5))
    assert tail * 20 < whole, (tail, whole)


# -- errors ---------------------------------------------------------------------------------------
def test_unopenable_sqlite_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "runyard.db").mkdir()
    with pytest.raises(StoreError, match=r"runyard\.db"):
        SqliteStore(tmp_path / "runyard.db")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runyard.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE runyard_schema SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(path)


def test_missing_psycopg_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from runyard.errors import MissingDependencyError\n"
        "from runyard.stores.postgres import PostgresStore\n"
        "try:\n    PostgresStore('postgresql://nobody@127.0.0.1:1/none')\n"
        "except MissingDependencyError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'runyard[postgres]'" in done.stdout


# -- listing, against the reference store ----------------------------------------------------------
@st.composite
def _filters(draw: st.DrawFn, runs: list[RunRecord]) -> RunFilter:
    folders = sorted({r.folder for r in runs} | {"/", "/a", "/a/b"})
    tags = sorted({t for r in runs for t in r.tags} | {"absent"})
    return RunFilter(
        status=frozenset(draw(st.lists(st.sampled_from(Status), max_size=2))),
        tags=frozenset(draw(st.lists(st.sampled_from(tags), max_size=2))),
        folder=draw(st.none() | st.sampled_from(folders)),
        name=draw(st.none() | st.sampled_from([r.name[1:4] for r in runs] + ["%", "_", ""])),
        kind=draw(st.none() | st.sampled_from(Kind)),
        created_since=draw(st.none() | st.sampled_from([r.created for r in runs])),
    )


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), runs=st.lists(run_strategy(), min_size=1, max_size=8))
def test_listing_matches_the_reference_store(
    store: RunStore, data: st.DataObject, runs: list[RunRecord]
) -> None:
    reference = MemoryStore()
    try:
        for run in runs:
            store.create_run(run)
            reference.create_run(run)
        for _ in range(10):
            _compare_listing(store, reference, data.draw(_filters(runs)), data)
    finally:
        for run in store.list_runs():
            store.delete_run(run.id)


def _compare_listing(
    store: RunStore, reference: RunStore, wanted: RunFilter, data: st.DataObject
) -> None:
    limit = data.draw(st.none() | st.integers(0, 5))
    offset = data.draw(st.integers(0, 3))
    for newest in (True, False):
        ours = store.list_runs(wanted, newest_first=newest, limit=limit, offset=offset)
        theirs = reference.list_runs(wanted, newest_first=newest, limit=limit, offset=offset)
        assert ours == theirs
    assert store.count_runs(wanted) == reference.count_runs(wanted)


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    from runyard.stores.postgres import PostgresStore

    with pytest.raises(StoreError) as caught:
        PostgresStore("postgresql://someone:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "secret" not in str(caught.value) and "someone:***@" in str(caught.value)


def test_open_store_shares_a_sqlite_store_while_its_file_is_the_same(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/db/runyard.db"
    first = open_store(url)
    assert open_store(url) is first
    run = first.create_run(RunRecord(id="01ARZ3NDEKTSV4RRFFQ69G5FAV", name="kept"))
    first.close()  # a closed store is not handed out again
    second = open_store(url)
    assert second is not first and second.get_run(run.id).name == "kept"
    second.close()
    (tmp_path / "db" / "runyard.db").unlink()  # a new file at the same path: a new store
    third = open_store(url)
    assert third is not second and third.list_runs() == []


def test_sqlite_checkpoints_in_the_background_and_keeps_the_log_small(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import runyard.stores.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY_S", 0.0)  # after every write
    store = SqliteStore(tmp_path / "r.db")
    run = store.create_run(make_run())
    from runyard.model import Step

    def doc(name: str, created: float) -> Step:
        return Step(name, created=created, metadata={"pad": "x" * 16_000})

    written = 0
    for batch in range(60):  # ~10 MB through the log; SQLite itself would wait for 16 MB
        docs = [doc(f"s-{batch}-{i}", batch + i / 10) for i in range(10)]
        store.upsert_steps(run.id, docs)
        written += 16_000 * len(docs)
        deadline = time.monotonic() + 30
        while store._checkpointing and time.monotonic() < deadline:
            time.sleep(0.005)
    assert store._checkpoints >= 60 and not store._checkpointing
    log = tmp_path / "r.db-wal"
    assert log.stat().st_size < written / 3  # the log was restarted after checkpoints
    assert len(store.get_steps(run.id)) == 600  # and nothing was lost
    again = SqliteStore(tmp_path / "r.db").get_steps(run.id)  # another connection
    assert [s.name for s in again][:11] == [*(f"s-0-{i}" for i in range(10)), "s-1-0"]


def test_sqlite_a_process_forked_right_after_a_write_uses_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``run exec`` does: write the run, fork the supervisor at once (a checkpoint thread
    may be inside SQLite just then), and the child writes too."""
    import os

    import runyard.stores.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY_S", 0.0)  # one after every write
    store = SqliteStore(tmp_path / "r.db")
    for _ in range(25):
        store.create_run(make_run())
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                SqliteStore(tmp_path / "r.db").create_run(make_run())
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError("the forked child never finished its write")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(done[1]) == 0
    assert store.count_runs() == 50
