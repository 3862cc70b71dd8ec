"""The ``Run`` tracking client against real stores: what it records, and how it ends."""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import psutil
import pytest

from runyard import Run
from runyard.core.catalog import read_artifact
from runyard.core.context import open_context
from runyard.core.liveness import host_name
from runyard.core.runs import create_run
from runyard.errors import (
    ConflictError,
    DataLost,
    RunNotFound,
    TrackingError,
    ValidationError,
)
from runyard.model import Owner, Status
from runyard.stores import open_store
from tracking_helpers import FAST


def test_the_tour_is_recorded_in_every_store(store_url: str, isolated: Path) -> None:
    Path("results.csv").write_text("step,loss\n10,0.3\n")
    with Run(store_url, **FAST) as run:
        run.init(name="my-first-run", metadata={"environment": "test"}, tags=["test"],
                 description="This is a test", folder="/tests/", status="running")
        run.log_metrics({"loss": 0.3, "acc": 0.9}, step=10)
        run.log_metrics({"loss": 0.2}, step=11, time=1234.5)
        run.log_event("converged after 10 steps")
        saved = run.save_file("results.csv", category="output")
        run.update_tags(["unconverged"])
        run.update_metadata({"status": "unconverged"})
        assert run.name == "my-first-run" and len(run.id) == 26
    store = open_store(store_url)
    record = store.get_run(run.id)
    assert record.status is Status.SUCCEEDED and record.ended is not None
    assert record.tags == {"test", "unconverged"}
    assert record.metadata == {"environment": "test", "status": "unconverged"}
    assert (record.description, record.folder) == ("This is a test", "/tests")
    assert record.owner is not None and record.owner.pid == os.getpid()
    assert record.config["heartbeat_interval"] is None
    assert record.environment["python"].count(".") == 2
    assert set(record.resources) == {"cpu_seconds", "peak_memory_mib", "samples"}
    loss = store.read_metrics(run.id, "loss")
    assert [(m.value, m.step) for m in loss] == [(0.3, 10), (0.2, 11)] and loss[1].time == 1234.5
    assert [e.message for e in store.read_events(run.id)] == ["converged after 10 steps"]
    [artifact] = store.list_artifacts(run.id)
    assert (artifact.name, artifact.category, artifact.hash) == ("results.csv", "output",
                                                                 saved.hash)
    blobs = open_context(store_url).blobs
    assert read_artifact(store, blobs, run.id, "results.csv") == b"step,loss\n10,0.3\n"


def test_defaults_generate_a_name_in_the_root_folder(isolated: Path) -> None:
    with Run("memory://defaults", **FAST) as run:
        run.init()
        assert re.fullmatch(r"[a-z]+-[a-z]+", run.name) and run.folder == "/"
    assert open_store("memory://defaults").get_run(run.id).status is Status.SUCCEEDED


def test_an_exception_fails_the_run_and_is_raised(isolated: Path) -> None:
    with pytest.raises(ZeroDivisionError), Run("memory://crash", **FAST) as run:
        run.init()
        run.log_metrics({"x": 1.0})
        1 / 0  # noqa: B018
    record = open_store("memory://crash").get_run(run.id)
    assert record.status is Status.FAILED
    assert record.status_reason == "ZeroDivisionError: division by zero"
    assert len(open_store("memory://crash").read_metrics(run.id)) == 1


def test_keyboard_interrupt_cancels_the_run(isolated: Path) -> None:
    with pytest.raises(KeyboardInterrupt), Run("memory://interrupt", **FAST) as run:
        run.init()
        raise KeyboardInterrupt
    record = open_store("memory://interrupt").get_run(run.id)
    assert record.status is Status.CANCELED and "KeyboardInterrupt" in str(record.status_reason)


def test_close_can_name_how_the_run_ended(isolated: Path) -> None:
    run = Run("memory://ended", **FAST).init()
    run.close("failed", "diverged")
    run.close()  # closing again does nothing
    record = open_store("memory://ended").get_run(run.id)
    assert (record.status, record.status_reason) == (Status.FAILED, "diverged")


def test_a_parameter_scan_keeps_several_runs_apart(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/scan.db"
    outer = Run(url, **FAST).init(name="outer")
    runs = []
    for rate in (0.1, 0.2, 0.3):
        with Run(url, **FAST) as run:
            run.init(metadata={"rate": rate})
            for step in range(50):
                run.log_metrics({"loss": rate * step}, step=step)
                outer.log_metrics({"seen": rate}, step=step)
        runs.append(run)
    outer.close()
    store = open_store(url)
    for rate, run in zip((0.1, 0.2, 0.3), runs, strict=True):
        assert [m.value for m in store.read_metrics(run.id)] == [rate * s for s in range(50)]
    assert len(store.read_metrics(outer.id, "seen")) == 150


def test_a_queued_run_is_opened_later_by_reconnect(store_url: str, isolated: Path) -> None:
    queued = Run(store_url, **FAST).init(name="queued-job", status="created")
    store = open_store(store_url)
    assert store.get_run(queued.id).status is Status.CREATED
    with pytest.raises(TrackingError, match="queued"):
        queued.log_metrics({"loss": 1.0})
    queued.update_tags(["batch"])
    queued.close()  # the batch system still has it: it stays created
    assert store.get_run(queued.id).status is Status.CREATED
    with Run(store_url, **FAST) as run:
        run.reconnect("queued-job")
        run.log_metrics({"loss": 0.5}, step=1)
        assert run.id == queued.id
    record = store.get_run(queued.id)
    assert record.status is Status.SUCCEEDED and record.started is not None
    assert record.tags == {"batch"} and record.owner is not None
    assert [m.value for m in store.read_metrics(queued.id)] == [0.5]


def test_reconnect_refuses_what_it_cannot_open(isolated: Path) -> None:
    url = "memory://reconnects"
    store = open_store(url)
    with pytest.raises(RunNotFound, match="no-such-run"):
        Run(url, **FAST).reconnect("no-such-run")
    done = Run(url, **FAST).init(name="done-run")
    done.close()
    with pytest.raises(ConflictError, match="has ended"):
        Run(url, **FAST).reconnect("done-run")
    init = psutil.Process(1)  # a live process on this host that is not us
    busy = create_run(store, name="busy-run", status=Status.RUNNING,
                      owner=Owner(host_name(), 1, init.create_time()))
    with pytest.raises(ConflictError, match="only a queued or lost run"):
        Run(url, **FAST).reconnect(busy.id)


def test_queued_run_can_be_canceled(isolated: Path) -> None:
    run = Run("memory://cancel-queued", **FAST).init(status="created")
    run.close("canceled", "not needed")
    assert open_store("memory://cancel-queued").get_run(run.id).status is Status.CANCELED


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ({"loss": "0.3"}, "non-numeric value '0.3'"),
        ({"loss": None}, "non-numeric value None"),
        ({"loss": True}, "non-numeric value True"),
        ({"loss": 1j}, "non-numeric"),
        ({"loss": Decimal("0.1")}, "non-numeric"),
        ({"loss": [1.0]}, "non-numeric"),
        ({"ok": 1.0, "loss": True}, "non-numeric value True"),
        ({"ok": 1.0, 3: 1.0}, "metric names are strings"),
        ({3: 1.0}, "metric names are strings"),
        ({"": 1.0}, "invalid metric name"),
        ({"a\nb": 1.0}, "invalid metric name"),
        ([("loss", 1.0)], "mapping of names to numbers"),
    ],
)
def test_bad_metrics_are_refused_and_nothing_is_queued(
    metrics: object, words: str, isolated: Path
) -> None:
    with Run("memory://bad-metrics", **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match=re.escape(words)):
            run.log_metrics(metrics)  # type: ignore[arg-type]
        run.flush()
        assert open_store("memory://bad-metrics").read_metrics(run.id) == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"step": -1}, "step must be a non-negative integer"),
        ({"step": 1.5}, "step must be a non-negative integer"),
        ({"step": True}, "step must be a non-negative integer"),
        ({"time": math.nan}, "finite number of epoch seconds"),
        ({"time": "now"}, "time must be epoch seconds"),
    ],
)
def test_bad_steps_and_times_are_refused(kwargs: dict[str, object], words: str,
                                         isolated: Path) -> None:
    with Run("memory://bad-steps", **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match=words):
            run.log_metrics({"loss": 1.0}, **kwargs)  # type: ignore[arg-type]


def test_nan_and_infinities_are_kept_and_other_reals_become_floats(store_url: str,
                                                                   isolated: Path) -> None:
    with Run(store_url, **FAST) as run:
        run.init()
        run.log_metrics({"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, step=0)
        run.log_metrics({"nan": 1, "inf": Fraction(1, 4), "ninf": 2.5}, step=1)
    store = open_store(store_url)
    values = {n: [m.value for m in store.read_metrics(run.id, n)] for n in ("nan", "inf", "ninf")}
    assert math.isnan(values["nan"][0]) and values["nan"][1] == 1.0
    assert values["inf"] == [math.inf, 0.25] and values["ninf"] == [-math.inf, 2.5]
    assert all(isinstance(v, float) for series in values.values() for v in series)


def test_calls_before_init_and_after_close_say_what_to_do(isolated: Path) -> None:
    run = Run("memory://order", **FAST)
    with pytest.raises(TrackingError, match=r"call run.init\(\) or run.reconnect\(\) first"):
        run.log_metrics({"loss": 1.0})
    with pytest.raises(TrackingError, match="not open yet"):
        _ = run.id
    with pytest.raises(TrackingError, match="first"):
        run.close()
    run.init(name="order-run")
    with pytest.raises(TrackingError, match="already open"):
        run.init()
    run.close()
    for call in (lambda: run.log_metrics({"loss": 1.0}), lambda: run.log_event("late"),
                 lambda: run.save_file(__file__), lambda: run.update_tags(["late"]),
                 lambda: run.update_metadata({"late": True}), lambda: run.reconnect("x")):
        with pytest.raises(TrackingError, match=r"order-run .* is closed|closed"):
            call()


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda r: r.update_tags("single"), "tags are a list of strings"),
        (lambda r: r.update_tags([""]), "a tag must be a non-empty string"),
        (lambda r: r.update_metadata({"x": math.nan}), "plain JSON with finite numbers"),
        (lambda r: r.update_metadata({"x": object()}), "plain JSON"),
        (lambda r: r.update_metadata(["x"]), "metadata must be a mapping"),
        (lambda r: r.log_event(42), "an event message is a string"),
        (lambda r: r.log_event("x", level="loud"), "unknown event level 'loud'"),
        (lambda r: r.save_file("no-such-file.txt"), "there is no such file"),
        (lambda r: r.save_file(__file__, name="../escape.py"), "no '..'"),
    ],
)
def test_bad_input_gives_one_clear_line(call: object, words: str, isolated: Path) -> None:
    with Run("memory://bad-input", **FAST) as run:
        run.init()
        with pytest.raises(ValidationError, match=re.escape(words)) as caught:
            call(run)  # type: ignore[operator]
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"status": "bogus"}, ValidationError, "unknown status 'bogus'"),
        ({"status": "succeeded"}, ValidationError, "starts as 'running' or 'created'"),
        ({"name": "bad/name"}, ValidationError, "invalid run name"),
        ({"folder": "no-slash"}, ValidationError, "invalid folder"),
        ({"metadata": {"x": {1, 2}}}, ValidationError, "plain JSON"),
    ],
)
def test_bad_init_is_refused(kwargs: dict[str, object], error: type[Exception], words: str,
                             isolated: Path) -> None:
    with pytest.raises(error, match=re.escape(words)):
        Run("memory://bad-init", **FAST).init(**kwargs)  # type: ignore[arg-type]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="heartbeat_interval must be a positive"):
        Run(heartbeat_interval=0)
    with pytest.raises(ValidationError, match="queue_size must be a positive integer"):
        Run(queue_size=0)
    run = Run("memory://close-status", **FAST).init()
    with pytest.raises(ValidationError, match="not 'running'"):
        run.close("running")
    run.close()


def test_a_saved_file_is_kept_as_it_was_when_saved(isolated: Path) -> None:
    url = f"sqlite://{isolated}/files.db"
    source = Path("model.txt")
    source.write_text("version 1")
    with Run(url, **FAST) as run:
        run.init()
        run.save_file(source, category="checkpoint", name="models/first.txt")
        source.write_text("version 2")
        run.save_file(source)
        source.unlink()
    store, blobs = open_store(url), open_context(url).blobs
    assert read_artifact(store, blobs, run.id, "models/first.txt") == b"version 1"
    assert read_artifact(store, blobs, run.id, "model.txt") == b"version 2"


def test_flush_makes_queued_values_visible_while_open(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/flush.db"
    with Run(url, heartbeat_interval=None, resources_interval=None, flush_interval=60) as run:
        run.init()
        for step in range(100):
            run.log_metrics({"loss": float(step)}, step=step)
        run.log_event("halfway", level="warning")
        assert run.flush(timeout=60)
        store = open_store(url)
        assert len(store.read_metrics(run.id)) == 100
        assert store.read_events(run.id)[0].level == "warning"


def test_a_full_queue_slows_the_caller_and_drops_nothing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/pressure.db"
    with Run(url, queue_size=8, heartbeat_interval=None, resources_interval=None) as run:
        run.init()
        for step in range(5000):
            run.log_metrics({"a": float(step), "b": -float(step)}, step=step)
            if step % 10 == 0:
                run.log_event(f"at {step}")
    store = open_store(url)
    assert [m.step for m in store.read_metrics(run.id, "a")] == list(range(5000))
    assert len(store.read_metrics(run.id, "b")) == 5000
    assert len(store.read_events(run.id)) == 500


def test_what_could_not_be_written_is_counted_when_closing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/lost.db"
    run = Run(url, **FAST).init()
    open_store(url).delete_run(run.id)  # someone deletes the run while it is logging
    for step in range(30):
        run.log_metrics({"loss": 1.0, "acc": 0.5}, step=step)
    run.log_event("lost too")
    with pytest.raises(DataLost) as caught:
        run.close()
    assert caught.value.lost == {"metric values": 60, "events": 1}
    assert "60 metric values" in str(caught.value) and "\n" not in str(caught.value)
