"""Offline runs go to the local spool; ``runyard sync`` uploads them exactly once."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from runyard import Run
from runyard.core.catalog import read_artifact
from runyard.core.context import open_context
from runyard.core.runs import create_run
from runyard.errors import ConfigError, ConflictError
from runyard.model import Status
from runyard.stores import RunStore, open_store
from runyard.tracking.spool import Spool
from runyard.tracking.sync import sync
from tracking_helpers import FAST, cli, read_line, start_script, wait_for

UNREACHABLE = "postgresql://nobody@127.0.0.1:9/nowhere"  # any use of it would fail


def offline_run(name: str, values: int = 50, *, close: bool = True) -> Run:
    Path(f"{name}.txt").write_text(f"output of {name}")
    run = Run(**FAST).init(name=name, tags=["offline", name], metadata={"n": values},
                           offline=True)
    for step in range(values):
        run.log_metrics({"loss": 1.0 / (step + 1), "step_sq": float(step * step)}, step=step)
    run.log_event(f"{name} done")
    run.save_file(f"{name}.txt", category="output")
    run.update_tags(["finished"])
    if close:
        run.close()
    return run


def assert_arrived_once(store: RunStore, url: str, run_id: str, name: str, values: int) -> None:
    [record] = [r for r in store.list_runs() if r.name == name]
    assert record.id == run_id and record.status is Status.SUCCEEDED
    assert record.tags == {"offline", name, "finished"} and record.metadata == {"n": values}
    assert [m.step for m in store.read_metrics(run_id, "loss")] == list(range(values))
    assert len(store.read_metrics(run_id)) == 2 * values
    assert [e.message for e in store.read_events(run_id)] == [f"{name} done"]
    blobs = open_context(url).blobs
    assert read_artifact(store, blobs, run_id, f"{name}.txt") == f"output of {name}".encode()


def test_offline_runs_touch_no_store_and_sync_exactly_once(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_STORE", UNREACHABLE)
    runs = [offline_run(f"offline-{i}") for i in range(3)]
    assert all(run.offline for run in runs)
    spool = Spool()
    assert spool.root == isolated / ".runyard" / "offline"
    assert len(spool.open().list_runs()) == 3
    url = f"sqlite://{isolated}/central.db"
    first = sync(url)
    assert sorted(first.uploaded) == sorted(r.id for r in runs) == sorted(first.removed)
    again = sync(url)
    assert (again.uploaded, again.removed) == ([], [])
    store = open_store(url)
    assert store.count_runs() == 3
    for run in runs:
        assert_arrived_once(store, url, run.id, run.name, 50)
    assert spool.open().list_runs() == []
    assert not any((spool.root / "blobs").iterdir())


def test_runyard_offline_variable_turns_offline_on(isolated: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_STORE", UNREACHABLE)
    monkeypatch.setenv("RUNYARD_OFFLINE", "1")
    with Run(**FAST) as run:
        run.init(name="from-env")
        run.log_metrics({"x": 1.0})
    assert run.offline and Spool().open().get_run(run.id).status is Status.SUCCEEDED
    monkeypatch.setenv("RUNYARD_OFFLINE", "maybe")
    with pytest.raises(ConfigError, match=r"RUNYARD_OFFLINE='maybe' is not understood"):
        Run(**FAST).init()


def test_a_queued_offline_run_is_reconnected_offline(isolated: Path) -> None:
    Run(**FAST).init(name="queued-offline", status="created", offline=True)
    with Run(**FAST) as run:
        run.reconnect("queued-offline", offline=True)
        run.log_metrics({"x": 2.0})
    spool = Spool().open()
    assert spool.get_run(run.id).status is Status.SUCCEEDED
    assert [m.value for m in spool.read_metrics(run.id)] == [2.0]


STILL_RUNNING = """
import time
from pathlib import Path
from runyard import Run
run = Run(heartbeat_interval=None, resources_interval=None, flush_interval=0.05)
run.init(name="long-offline", offline=True)
for step in range(100):
    run.log_metrics({"loss": float(step)}, step=step)
run.flush()
print(run.id, flush=True)
while not Path("go").exists():
    time.sleep(0.02)
for step in range(100, 200):
    run.log_metrics({"loss": float(step)}, step=step)
run.close()
"""


def test_a_running_offline_run_is_synced_and_kept_until_closed(isolated: Path) -> None:
    url = f"sqlite://{isolated}/central.db"
    child = start_script(STILL_RUNNING, isolated)
    run_id = read_line(child)
    first = sync(url)
    assert (first.uploaded, first.kept, first.removed) == ([run_id], [run_id], [])
    store = open_store(url)
    assert store.get_run(run_id).status is Status.RUNNING
    assert len(store.read_metrics(run_id)) == 100
    Path("go").touch()
    assert child.wait(timeout=60) == 0
    second = sync(url)
    assert second.removed == [run_id]
    assert store.get_run(run_id).status is Status.SUCCEEDED
    assert [m.step for m in store.read_metrics(run_id)] == list(range(200))
    assert Spool().open().list_runs() == []


def test_a_dead_offline_owner_is_uploaded_as_lost_and_kept(isolated: Path) -> None:
    child = start_script(STILL_RUNNING, isolated)
    run_id = read_line(child)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    url = f"sqlite://{isolated}/central.db"
    report = sync(url)
    assert report.kept == [run_id]
    assert open_store(url).get_run(run_id).status is Status.LOST
    assert Spool().open().get_run(run_id).status is Status.LOST


def test_only_one_sync_runs_at_a_time(isolated: Path) -> None:
    offline_run("locked")
    url = f"sqlite://{isolated}/central.db"
    with Spool().sync_lock():
        refused = cli("sync", "--to", url, cwd=isolated)
        with pytest.raises(ConflictError, match="another `runyard sync` is running"):
            sync(url)
    assert refused.code == 4 and "another `runyard sync` is running" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    done = cli("sync", "--to", url, "--json", cwd=isolated)
    assert done.code == 0, done.err
    assert len(json.loads(done.out)["removed"]) == 1


def test_a_name_clash_keeps_that_run_and_syncs_the_others(isolated: Path) -> None:
    url = f"sqlite://{isolated}/central.db"
    create_run(open_store(url), name="clash")
    offline_run("clash")
    offline_run("fine")
    result = cli("sync", "--to", url, cwd=isolated)
    assert result.code == 4 and "clashes with a different run" in result.err
    assert [r.name for r in Spool().open().list_runs()] == ["clash"]
    assert {r.name for r in open_store(url).list_runs()} == {"clash", "fine"}


def test_syncing_an_empty_or_missing_spool_does_nothing(isolated: Path) -> None:
    result = cli("sync", "--to", f"sqlite://{isolated}/central.db", cwd=isolated)
    assert result.code == 0 and "synced 0 offline runs" in result.err
    assert not (isolated / ".runyard").exists()


MANY_RUNS = 12
VALUES = 20_000


@pytest.mark.slow
def test_a_sync_killed_halfway_completes_when_run_again(isolated: Path) -> None:
    runs = [offline_run(f"bulk-{i}", VALUES) for i in range(MANY_RUNS)]
    url = f"sqlite://{isolated}/central.db"
    proc = start_script(f"from runyard.tracking.sync import sync; sync({url!r})", isolated)
    store = open_store(url)
    wait_for(lambda: store.count_runs() >= 2 or proc.poll() is not None,
             what="the sync to upload its first runs")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(Spool().open().list_runs()) > 0, "the sync finished before it could be killed"
    for _ in range(2):  # the restart completes it; one more sync finds nothing to do
        result = cli("sync", "--to", url, cwd=isolated)
        assert result.code == 0, result.err
    assert store.count_runs() == MANY_RUNS
    for run in runs:
        assert_arrived_once(store, url, run.id, run.name, VALUES)
    assert Spool().open().list_runs() == []
