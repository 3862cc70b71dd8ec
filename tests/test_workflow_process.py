"""Workflows on the ``process`` runtime: a detached supervisor that outlives its caller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wf_defs
from runyard import WorkflowRun
from runyard.errors import ValidationError, WorkflowDefinitionError
from runyard.model import Status

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return f"sqlite://{tmp_path}/store/runyard.db"


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_started_in_one_process_and_followed_from_another(store_url: str, tmp_path: Path
                                                          ) -> None:
    start = python(
        "import wf_defs\n"
        f"run = wf_defs.fan(6).run('process', store={store_url!r})\n"
        "print(run.run_id)\n", tmp_path)
    assert start.returncode == 0, start.stderr
    run_id = start.stdout.strip()
    follow = python(
        "import json\nfrom runyard import WorkflowRun\n"
        f"run = WorkflowRun.by_id({run_id!r}, store={store_url!r})\n"
        "result = run.get_results(wait=True, timeout=240)\n"
        "tasks = run.get_task_runs()\n"
        "print(json.dumps([result, run.get_status().value, len(tasks),"
        " sorted({t.status.value for t in tasks})]))\n", tmp_path)
    assert follow.returncode == 0, follow.stderr
    assert json.loads(follow.stdout) == [21, "succeeded", 7, ["succeeded"]]


def test_process_runs_capture_logs_and_retry(store_url: str, tmp_path: Path) -> None:
    run = wf_defs.flaky_flow(str(tmp_path / "m")).run("process", store=store_url)
    assert run.get_results(wait=True, timeout=240) == "ok after 3"
    (flaky,) = run.get_task_runs()
    assert len(flaky.attempts) == 3
    chained = wf_defs.chain(3).run("process", store=store_url)
    assert chained.get_results(wait=True, timeout=240) == 3
    assert [line.text for line in chained.get_logs("add-3")["add-3"]] == ["adding 1 and 2"]


def test_killing_the_supervisor_makes_the_run_lost(store_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "sleeping"
    run = wf_defs.slow(120, str(marker)).run("process", store=store_url)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    owner = run.run.owner
    assert owner is not None and run.get_status() is Status.RUNNING
    os.kill(owner.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while run.get_status() is Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.get_status() is Status.LOST
    assert "is gone" in (run.run.status_reason or "")
    from commands_helpers import gone

    assert gone([int(marker.read_text())], limit=15)  # the worker ends with its owner


def test_unpicklable_arguments_are_refused_for_process(store_url: str) -> None:
    plan = wf_defs.scale(1)  # a plain call outside a workflow still works
    assert plan == 2

    flow = wf_defs.chain(2)
    assert flow.run("process", store=store_url).get_results(wait=True, timeout=240) == 1
    from runyard import workflow

    @workflow
    def locked() -> object:
        return wf_defs.total(threading.Lock())

    with pytest.raises(ValidationError, match="does not pickle") as info:
        locked().run("process", store=store_url)
    assert "\n" not in str(info.value)


def test_local_workflows_need_module_level_definitions_for_process(store_url: str) -> None:
    from runyard import task, workflow

    gate = threading.Event()

    @task
    def uses_gate() -> bool:
        return gate.is_set()

    @workflow
    def local() -> object:
        return uses_gate()

    with pytest.raises(WorkflowDefinitionError, match="do not pickle"):
        local().run("process", store=store_url)
    assert local().run("in_process", store=store_url).get_results(wait=True) is False


def test_cancel_from_another_process(store_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "sleeping"
    run = wf_defs.slow(3, str(marker)).run("process", store=store_url)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    follower = WorkflowRun.by_id(run.run_id, store=store_url)
    follower.cancel()
    assert follower.wait(120) is Status.CANCELED
