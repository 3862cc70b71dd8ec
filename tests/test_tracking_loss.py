"""Tracking loses nothing: bad values are refused where they are logged, a batch the store
refuses costs only its bad values, the writer never dies silently, forked children get a clear
error, and ``sys.exit`` and SIGTERM end the run as they should, with what was queued written."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from runyard import Run
from runyard.errors import DataLost, ValidationError
from runyard.model import Event, Metric, Status
from runyard.stores import RunStore, open_store
from runyard.stores.memory import MemoryStore
from runyard.testing.factories import make_run
from runyard.tracking.flusher import Flusher
from tracking_helpers import FAST, child_env, read_line, start_script

HUGE = 10**400  # an int no float can hold


def _store(url: str) -> RunStore:
    return open_store(url)


# -- refused in the caller, on every backend ---------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"huge": HUGE}, "metric 'huge' has a value too large for a float"),
        ({"a\x00b": 1.0}, "invalid metric name 'a\\x00b'"),
        ({"a\rb": 1.0}, "invalid metric name 'a\\rb'"),
        ({"huge": HUGE, "text": "x"}, "also refused: 'text'"),
    ],
    ids=["int-beyond-float", "nul-in-name", "cr-in-name", "two-bad"],
)
def test_a_bad_value_is_refused_in_the_caller_and_costs_no_other(
    store_url: str, bad: dict[str, Any], words: str
) -> None:
    with Run(store_url, **FAST) as run:
        run.init()
        run.log_metrics({"good": 1.0}, step=0)
        with pytest.raises(ValidationError, match=re.escape(words) + ".*nothing of this call"):
            run.log_metrics({"same-call": 2.0, **bad}, step=1)
        run.log_metrics({"good": 3.0, "count": 4}, step=2)
    store = run.store
    assert store.get_run(run.id).status is Status.SUCCEEDED
    assert [(m.name, m.value, m.step) for m in store.read_metrics(run.id)] == [
        ("good", 1.0, 0), ("good", 3.0, 2), ("count", 4.0, 2)]


def test_a_huge_int_alone_is_refused_and_a_big_one_kept(store_url: str) -> None:
    with Run(store_url, **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match="'huge' has a value too large for a float"):
            run.log_metrics({"huge": HUGE})
        run.log_metrics({"big": 10**300})
    assert [m.value for m in run.store.read_metrics(run.id)] == [1e300]


@pytest.mark.parametrize("step", [2**63, 2**70, -1])
def test_a_step_out_of_range_is_refused_in_the_caller(store_url: str, step: int) -> None:
    with Run(store_url, **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match="step must be a non-negative integer below"):
            run.log_metrics({"a": 1.0}, step=step)
        run.log_metrics({"a": 2.0}, step=2**63 - 1)
    assert [(m.value, m.step) for m in run.store.read_metrics(run.id)] == [(2.0, 2**63 - 1)]
    assert run.store.get_run(run.id).status is Status.SUCCEEDED


@pytest.mark.parametrize("when", [HUGE, math.inf, math.nan])
def test_a_time_out_of_range_is_refused_in_the_caller(when: float) -> None:
    with Run("memory://times", **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match="time must be a finite number of epoch"):
            run.log_metrics({"a": 1.0}, time=when)
        with pytest.raises(ValidationError, match="time must be a finite number of epoch"):
            run.log_event("at a bad time", time=when)
    assert run.store.read_metrics(run.id) == []


def test_an_event_with_nul_is_refused_in_the_caller(store_url: str) -> None:
    with Run(store_url, **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match="contains NUL"):
            run.log_event("bad\x00message")
        run.log_event("good message")
    assert [e.message for e in run.store.read_events(run.id)] == ["good message"]


# -- the store checks the columns too (a server exposes this contract) -------------------------
@pytest.mark.parametrize(
    ("column", "bad", "words"),
    [
        ("values", HUGE, "too large for a float"),
        ("values", "high", "non-numeric"),
        ("names", "a\x00b", "invalid metric name"),
        ("steps", 2**64, "step"),
        ("steps", 1.5, "step 1.5"),
        ("times", math.nan, "time nan"),
        ("times", "now", "time 'now'"),
    ],
)
def test_metric_columns_are_checked_by_the_store(
    store_url: str, column: str, bad: Any, words: str
) -> None:
    store = _store(store_url)
    run = store.create_run(make_run())
    columns: dict[str, list[Any]] = {"names": ["a", "b", "a"], "values": [1.0, 2.0, 3.0],
                                     "steps": [0, 0, 1], "times": [1.0, 1.0, 2.0]}
    columns[column][1] = bad
    with pytest.raises(ValidationError, match=words):
        store.append_metric_columns(run.id, **columns)
    with pytest.raises(ValidationError, match="equally long"):
        store.append_metric_columns(run.id, ["a"], [1.0, 2.0], [None], [1.0])
    assert store.read_metrics(run.id) == []


def test_metric_columns_round_trip_as_records_do(store_url: str) -> None:
    store = _store(store_url)
    run = store.create_run(make_run())
    batch = [Metric("loss" if i % 3 else "acc", i / 7, None if i % 5 == 0 else i, 100.0 + i)
             for i in range(300)]
    store.append_metric_columns(run.id, *map(list, zip(*batch[:200], strict=True)))
    store.append_metrics(run.id, batch[200:])
    assert store.read_metrics(run.id) == batch
    assert [s.count for s in store.metric_summaries(run.id)] == [100, 200]


@pytest.mark.parametrize("bad", [Metric("a", 1.0, 2**64, 1.0), Metric("a", 1.0, 0, math.inf)])
def test_records_with_a_step_or_time_no_store_can_keep_write_nothing(
    store_url: str, bad: Metric
) -> None:
    store = _store(store_url)
    run = store.create_run(make_run())
    with pytest.raises(ValidationError):
        store.append_metrics(run.id, [Metric("a", 1.0, 0, 1.0), bad])
    assert store.read_metrics(run.id) == []


# -- a refused batch is split: every good value is written -------------------------------------
def test_a_batch_the_store_refuses_is_split_until_every_good_value_is_written(
    store_url: str,
) -> None:
    store = _store(store_url)
    run = store.create_run(make_run())
    queue: list[Any] = []
    for i in range(1000):
        queue += ("loss", float(i), i, 1000.0 + i)
    queue[4 * 333 + 1] = HUGE  # values no store can keep, past the client's checks
    queue[4 * 777] = "bad\x00name"
    flusher = Flusher(store, run.id, retry_delays=())
    assert flusher.metrics(queue) == 1000
    assert queue == []
    assert [m.step for m in store.read_metrics(run.id)] == [
        i for i in range(1000) if i not in (333, 777)]
    assert (flusher.lost["metric values"], flusher.written["metric values"]) == (2, 998)
    assert "could not be written (ValidationError: metric 'loss'" in str(flusher.lost_message())


class OverflowingStore(MemoryStore):
    """A store with a bug: it fails with ``OverflowError`` on values above 1e300 (as the
    file stores did on an int beyond a float), not with a ``RunyardError``."""

    def append_metric_columns(self, run_id: str, names: Any, values: Any, steps: Any,
                              times: Any) -> None:
        if any(v > 1e300 for v in values):
            raise OverflowError("int too large to convert to float")
        super().append_metric_columns(run_id, names, values, steps, times)


def test_a_writer_error_never_kills_the_writer_and_surfaces_at_close() -> None:
    store = OverflowingStore("memory://overflowing")
    run = Run(store, **FAST).init()
    for step in range(100):
        run.log_metrics({"loss": 1e301 if step == 50 else float(step)}, step=step)
    run.flush()
    run.log_metrics({"after": 1.0})  # the writer still lives
    with pytest.raises(DataLost, match=r"1 metric values could not be written \(OverflowError"):
        run.close()
    record = store.get_run(run.id)
    assert record.status is Status.FAILED
    assert "1 metric values could not be written" in str(record.status_reason)
    assert [m.step for m in store.read_metrics(run.id, "loss")] == [
        s for s in range(100) if s != 50]
    assert len(store.read_metrics(run.id, "after")) == 1


@pytest.mark.parametrize("kind", ["file", "chunked"])  # the stores that refuse such an event
def test_a_refused_event_costs_only_itself(kind: str, tmp_path: Path) -> None:
    store = _store(f"{kind}://{tmp_path}/store")
    run = store.create_run(make_run())
    events = deque(Event(float(i), f"event {i}") for i in range(10))
    events[4] = Event(4.0, object())  # type: ignore[arg-type]  # not JSON: refused
    flusher = Flusher(store, run.id, retry_delays=())
    assert flusher.events(events) == 10
    assert [e.message for e in store.read_events(run.id)] == [
        f"event {i}" for i in range(10) if i != 4]
    assert flusher.lost["events"] == 1


# -- forked children ---------------------------------------------------------------------------
FORKED = """
    import multiprocessing, os, sys
    from runyard import Run
    from runyard.errors import TrackingError

    run = Run({url!r}, heartbeat_interval=None, resources_interval=None, flush_interval=60)
    run.init(name="forked")
    run.log_metrics({{"parent": 1.0}}, step=0)  # queued, not yet written, when forking

    def child_logs(step):
        try:
            run.log_metrics({{"child": 1.0}}, step=step)
        except TrackingError as exc:
            return str(exc)
        return "accepted"

    pid = os.fork()
    if pid == 0:
        answer = child_logs(1)
        with run:  # leaving a with block in the child must not end the parent's run
            pass
        os._exit(0 if "a child it forked" in answer else 1)
    _, status = os.waitpid(pid, 0)
    print("fork", os.waitstatus_to_exitcode(status), flush=True)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        answers = pool.map(child_logs, range(2, 6))
    print("pool", answers[0], flush=True)
    run.log_metrics({{"parent": 2.0}}, step=9)
    run.close()
    print("closed", flush=True)
"""


def test_values_logged_in_forked_children_raise_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/fork.db"
    child = start_script(FORKED.format(url=url), tmp_path)
    assert read_line(child) == "fork 0"
    pool = read_line(child)
    assert pool.startswith("pool cannot log metrics: run forked") and "forked (os.fork" in pool
    assert read_line(child) == "closed"
    assert child.wait(timeout=60) == 0
    store = open_store(url)
    record = store.get_run_by_name("forked")
    assert record.status is Status.SUCCEEDED
    assert [(m.name, m.step) for m in store.read_metrics(record.id)] == [
        ("parent", 0), ("parent", 9)]  # once each: the children never wrote the parent's queue


# -- sys.exit and SIGTERM ----------------------------------------------------------------------
EXITING = """
    import sys
    from runyard import Run
    with Run({url!r}, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name="exiting")
        run.log_metrics({{"a": 1.0}})
        sys.exit({code})
"""


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [("3", Status.FAILED, "SystemExit: 3"), ("'bad input'", Status.FAILED,
                                             "SystemExit: bad input"),
     ("0", Status.SUCCEEDED, "exited (SystemExit 0)"), ("None", Status.SUCCEEDED, None)],
)
def test_sys_exit_inside_a_run_ends_it_by_its_code(
    tmp_path: Path, code: str, status: Status, reason: str | None
) -> None:
    url = f"sqlite://{tmp_path}/exit.db"
    child = start_script(EXITING.format(url=url, code=code), tmp_path)
    child.communicate(timeout=60)
    assert child.returncode == (3 if code == "3" else 1 if code == "'bad input'" else 0)
    store = open_store(url)
    record = store.get_run_by_name("exiting")
    assert record.status is status
    if reason is not None:
        assert record.status_reason == reason
    assert len(store.read_metrics(record.id)) == 1


TERMINATED = """
    import time
    from runyard import Run
    run = Run({url!r}, heartbeat_interval=None, resources_interval=None, flush_interval=600)
    run.init(name="terminated")
    for step in range(5000):
        run.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
    run.log_event("queued, not yet written")
    print("ready", flush=True)
    time.sleep(600)
"""


def test_sigterm_writes_what_was_queued_and_ends_the_run_canceled(store_url: str,
                                                                  tmp_path: Path) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("a memory store cannot be read from another process")
    child = start_script(TERMINATED.format(url=store_url), tmp_path)
    assert read_line(child) == "ready"
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM  # it died of SIGTERM, as it would have
    store = open_store(store_url)
    record = store.get_run_by_name("terminated")
    assert (record.status, record.status_reason) == (Status.CANCELED, "terminated (SIGTERM)")
    assert [m.step for m in store.read_metrics(record.id)] == list(range(5000))
    assert [e.message for e in store.read_events(record.id)] == ["queued, not yet written"]


BUSY = """
    import sys
    from runyard import Run
    run = Run({url!r}, heartbeat_interval=None, resources_interval=None, queue_size=500,
              flush_interval=0.01)
    run.init(name=sys.argv[1])
    print("ready", flush=True)
    step = 0
    while True:  # the queue fills up again and again: the caller often waits on the writer
        run.log_metrics({{"a": 1.0, "b": 2.0}}, step=step)
        if step % 1000 == 0:
            run.flush()
        step += 1
"""


def test_sigterm_at_any_moment_of_a_busy_loop_ends_the_run_with_nothing_missing(
    tmp_path: Path,
) -> None:
    url = f"sqlite://{tmp_path}/busy.db"
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(BUSY.format(url=url)), f"busy-{round_}"],
            cwd=tmp_path, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True)
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(0.1 * round_)  # a different moment each round
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM  # never hangs in the handler
        store = open_store(url)
        record = store.get_run_by_name(f"busy-{round_}")
        assert record.status is Status.CANCELED
        steps = [m.step for m in store.read_metrics(record.id, "a")]
        assert steps == list(range(len(steps)))


OWN_HANDLER = """
    import signal, sys, time
    from runyard import Run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    with Run({url!r}, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name="own-handler")
        print("ready", flush=True)
        time.sleep(600)
"""


def test_a_programs_own_sigterm_handler_is_left_alone(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/own.db"
    child = start_script(textwrap.dedent(OWN_HANDLER).format(url=url), tmp_path)
    assert read_line(child) == "ready"
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == 7
    record = open_store(url).get_run_by_name("own-handler")
    assert (record.status, record.status_reason) == (Status.FAILED, "SystemExit: 7")
