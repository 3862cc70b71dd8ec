"""Liveness: owners that die are reported lost when read; heartbeats bring runs back."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from runyard import Run
from runyard.core import liveness
from runyard.core.runs import create_run
from runyard.model import Owner, Status
from runyard.stores import open_store
from tracking_helpers import FAST, cli, read_line, show_json, start_script, wait_for

OWNER = """
import time
from runyard import Run
run = Run({url!r}, heartbeat_interval=3600, resources_interval=None, flush_interval=0.05)
run.init(name={name!r})
for step in range(20):
    run.log_metrics({{"loss": 1.0 / (step + 1)}}, step=step)
run.flush()
print(run.id, flush=True)
time.sleep(600)
"""


def start_owner(url: str, name: str, cwd: Path) -> tuple[int, str]:
    """A child process that opens a run, logs 20 values and then just sleeps."""
    proc = start_script(OWNER.format(url=url, name=name), cwd)
    run_id = read_line(proc)
    return proc.pid, run_id


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_sigkilled_owner_is_reported_lost_at_once(tmp_path: Path, reaped: bool) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    proc = start_script(OWNER.format(url=url, name="doomed"), tmp_path)
    run_id = read_line(proc)
    assert show_json(url, run_id, tmp_path)["status"] == "running"
    os.kill(proc.pid, signal.SIGKILL)
    if reaped:
        proc.wait(timeout=30)
    else:  # not waited for: the dead owner is a zombie until the end of the test
        wait_for(lambda: _is_zombie(proc.pid), what="the child to die")
    doc = show_json(url, run_id, tmp_path)  # the heartbeat (an hour) is far from due
    assert doc["status"] == "lost"
    assert f"owner process {proc.pid}" in doc["status_reason"] and "gone" in doc["status_reason"]
    assert doc["metrics"]["loss"]["count"] == 20
    assert open_store(url).get_run(run_id).status is Status.LOST  # written back
    proc.wait(timeout=30)


def _is_zombie(pid: int) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_run_list_reports_dead_owners_as_lost(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    pid, run_id = start_owner(url, "listed", tmp_path)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    listed = cli("--store", url, "run", "list", "--status", "lost", cwd=tmp_path)
    assert listed.code == 0 and run_id in listed.out and "lost" in listed.out


def test_a_run_owned_elsewhere_is_lost_after_three_missed_heartbeats(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    store = open_store(url)
    beat = time.time()
    run = create_run(store, name="remote-run", status=Status.RUNNING, heartbeat=beat,
                     owner=Owner("elsewhere.invalid", 4242, beat - 60),
                     config={"heartbeat_interval": 0.2})
    assert liveness.refresh(store, run, now=beat + 0.55).status is Status.RUNNING
    assert show_json(url, run.id, tmp_path)["status"] in ("running", "lost")
    wait_for(lambda: time.time() > beat + 0.7, what="three heartbeats to be missed")
    doc = show_json(url, run.id, tmp_path)
    assert doc["status"] == "lost"
    assert doc["status_reason"].startswith("no heartbeat from elsewhere.invalid (pid 4242)")


def test_without_heartbeats_a_run_elsewhere_is_never_timed_out(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/runs.db")
    run = create_run(store, status=Status.RUNNING, heartbeat=1.0,
                     owner=Owner("elsewhere.invalid", 1, 1.0),
                     config={"heartbeat_interval": None})
    assert liveness.refresh(store, run, now=1e10).status is Status.RUNNING


def test_a_reused_pid_does_not_keep_a_run_alive(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/runs.db")
    me = liveness.this_owner()  # a live pid, but not the process that started the run
    run = create_run(store, status=Status.RUNNING,
                     owner=Owner(me.host, os.getppid(), me.started - 3600 * 24 * 365))
    assert liveness.refresh(store, run).status is Status.LOST


def test_a_live_owner_keeps_its_run_running(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    with Run(url, **FAST) as run:
        run.init()
        assert liveness.sweep(open_store(url)) == 0
        assert show_json(url, run.id, tmp_path)["status"] == "running"


def test_heartbeats_advance_and_bring_a_lost_run_back(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    store = open_store(url)
    with Run(url, heartbeat_interval=0.05, resources_interval=None) as run:
        run.init()
        first = store.get_run(run.id).heartbeat
        assert first is not None
        wait_for(lambda: (store.get_run(run.id).heartbeat or 0) > first, what="a heartbeat")
        store.update_status(run.id, Status.LOST, "a reader lost patience", expect=Status.RUNNING)
        wait_for(lambda: store.get_run(run.id).status is Status.RUNNING,
                 what="the heartbeat to bring the run back")
    assert store.get_run(run.id).status is Status.SUCCEEDED


def test_a_lost_run_is_continued_by_reconnect(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runs.db"
    pid, run_id = start_owner(url, "resumed", tmp_path)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with Run(url, **FAST) as run:
        run.reconnect("resumed")  # found lost on the way, and made running again
        assert run.id == run_id
        run.log_metrics({"loss": 0.01}, step=20)
    store = open_store(url)
    record = store.get_run(run_id)
    assert record.status is Status.SUCCEEDED and record.owner == liveness.this_owner()
    assert [m.step for m in store.read_metrics(run_id, "loss")] == list(range(21))
