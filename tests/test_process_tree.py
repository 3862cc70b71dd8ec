"""A job's whole process tree ends with its owner, however the owner ends.

Real processes throughout: a job forks children, a grandchild that calls ``setsid``, an orphan
of a double fork in a session of its own, and one that ignores SIGTERM and SIGHUP; then its
supervisor is killed (``kill -9``, or a signal it does not handle) and every one of them must
be gone within a bounded wait. The same for the ``process`` runtime's pool workers and the
processes their tasks start; and a run whose ``run create`` was killed after recording it
never stays ``pending``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from commands_helpers import environment, gone, job_spec, ok, show, wait_status

TESTS = Path(__file__).resolve().parent
FAMILY = """
sleep {m} &
setsid sleep {m} &
( setsid sleep {m} & )
( ( sleep {m} & ) & )
nohup bash -c "trap '' TERM HUP INT; sleep {m}; true" >/dev/null 2>&1 &
echo ready
wait
"""
EXECUTORS = ["local", pytest.param("sandbox", marks=pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap"))]


def mark() -> str:
    """A sleep duration no other process on the machine uses: it names the job's processes."""
    return f"{3000 + random.random():.9f}"


def marked(token: str, at_least: int, limit: float = 30) -> list[int]:
    """The pids of processes whose command line holds ``token``, once ``at_least`` exist."""
    deadline = time.monotonic() + limit
    while True:
        pids = [p.pid for p in psutil.process_iter(["cmdline"])
                if token in " ".join(p.info["cmdline"] or [])]
        if len(pids) >= at_least or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def kill_all(pids: list[int]) -> None:
    """Clean up after a failed check: nothing of a test may outlive it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "crash"])
def test_the_whole_tree_ends_with_its_supervisor(tmp_path: Path, executor: str,
                                                  how: signal.Signals) -> None:
    token = mark()
    spec = job_spec(tmp_path, ["bash", "-c", FAMILY.format(m=token)])
    run_id = ok(tmp_path, "run", "create", "--executor", executor, "-f", spec).strip()
    assert wait_status(tmp_path, run_id, {"running"})["status"] == "running"
    family = marked(token, at_least=6)
    assert len(family) >= 6, family
    supervisor = show(tmp_path, run_id)["owner"]["pid"]
    os.kill(supervisor, how)  # SIGTERM: the supervisor has no handler, it just dies
    try:
        assert gone([supervisor, *family], limit=15), [
            p for p in family if psutil.pid_exists(p)]
    finally:
        kill_all(family)


def test_a_run_whose_create_was_killed_never_stays_pending(tmp_path: Path) -> None:
    """``run create`` killed after it recorded the run and before it started it."""
    url = f"sqlite://{tmp_path}/.runyard/runyard.db"
    spec = job_spec(tmp_path, ["true"])
    script = (
        "import os, signal, sys\n"
        "from runyard.commands import launch\n"
        "from runyard.commands.context import open_context\n"
        "from runyard.commands.detach import prefork\n"
        "from runyard.commands.runspec import Flags, build\n"
        "handle = prefork(sys.argv[1])\n"
        "ctx = open_context(sys.argv[1])\n"
        "created = launch.create(ctx, build(ctx.registry, Flags(file=sys.argv[2])),"
        " owner=handle.owner)\n"
        "print(created.run.id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", script, url, spec], cwd=tmp_path,
                            env=environment(), capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    from runyard import open_store

    store = open_store(url)
    try:
        run_id = killed.stdout.strip()
        deadline = time.monotonic() + 30
        while store.get_run(run_id).status.value == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
        run = store.get_run(run_id)  # as stored: no reader's liveness check applied
        assert run.status.value == "failed" and "ended before it started" in str(
            run.status_reason)
    finally:
        store.close()


POOL = """
import subprocess, sys, time
from runyard.runtimes.process import ProcessRuntime

def family(token):
    import os, subprocess
    subprocess.Popen(["sleep", token])
    subprocess.Popen(["setsid", "sleep", token])
    subprocess.run(["bash", "-c", f"( setsid sleep {token} & )"])
    return os.getpid()

runtime = ProcessRuntime(2)
runtime.start()
print(runtime.submit(family, sys.argv[1]).result(timeout=120), flush=True)
time.sleep(300)
"""


def test_process_runtime_workers_and_their_tasks_end_with_their_owner(tmp_path: Path) -> None:
    token = mark()
    owner = subprocess.Popen([sys.executable, "-c", POOL, token], cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    worker = int(owner.stdout.readline())
    family = marked(token, at_least=3)
    workers = [p.pid for p in psutil.Process(owner.pid).children()
               if "multiprocessing" in " ".join(p.cmdline())]
    assert worker in workers and len(family) >= 3, (workers, family)
    owner.kill()
    owner.wait()
    try:
        assert gone([*workers, *family], limit=15), [
            p for p in [*workers, *family] if psutil.pid_exists(p)]
    finally:
        kill_all([*workers, *family])


HUNDRED_MIB = 'python3 -c "x = b\'x\' * (100 << 20); import time; time.sleep(1.5)"'


def test_the_meter_measures_the_jobs_as_one_tree(tmp_path: Path) -> None:
    """Two processes of 100 MiB each at once: the tree's peak is over 200 MiB (the largest
    single process, all ``getrusage`` can say, is 100); their CPU time is counted."""
    spec = job_spec(tmp_path, ["bash", "-c", f"{HUNDRED_MIB} & {HUNDRED_MIB} & wait"])
    run_id = ok(tmp_path, "run", "create", "-f", spec).strip()
    doc = wait_status(tmp_path, run_id, {"succeeded", "failed"})
    assert doc["status"] == "succeeded", doc["status_reason"]
    used = doc["resources"]
    assert used["cpu_user_s"] + used["cpu_system_s"] > 0, used
    if os.geteuid() == 0 and os.access("/sys/fs/cgroup", os.W_OK | os.X_OK):
        assert used["meter"].startswith("cgroup-"), used
        assert used["peak_rss_bytes"] >= 200 << 20, used
        supervisor = doc["owner"]["pid"]
        assert not list(Path("/sys/fs/cgroup").glob(f"*/**/runyard-{supervisor}")), \
            "the run's control groups are removed"
    else:
        assert used["meter"] == "rusage", used


def test_a_workflow_whose_owner_dies_leaves_no_task_run_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``process`` runtime's supervisor is killed while a task runs: the run is found
    ``lost``, its running attempt with it, and the worker running the task is gone."""
    import wf_defs
    from runyard.model import Status

    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "sleeping"
    run = wf_defs.slow(120, str(marker)).run("process", store=f"sqlite://{tmp_path}/s/r.db")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            a.status is Status.RUNNING for s in run.store.get_steps(run.run_id)
            for a in s.attempts):
        time.sleep(0.05)  # the recorder writes a task run in flight once it is a second old
    owner = run.run.owner
    assert owner is not None and marker.exists()
    os.kill(owner.pid, signal.SIGKILL)
    while run.get_status() is Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.get_status() is Status.LOST
    attempts = [a for s in run.store.get_steps(run.run_id) for a in s.attempts]
    assert attempts and all(a.status is Status.LOST for a in attempts), attempts
    assert gone([int(marker.read_text())], limit=15)
