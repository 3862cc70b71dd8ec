"""Command run lifecycle: failures, timeouts, cancel, a killed supervisor, the sandbox, and a
1 GiB stream with bounded memory. Every test checks that no job process is left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from commands_helpers import RUNYARD, environment, gone, job_spec, ok, runyard, show, wait_status

PIDS = 'echo "pids $$ $!"'


def pids_from_logs(cwd: Path, run_id: str) -> list[int]:
    for _ in range(200):
        for line in ok(cwd, "run", "logs", run_id).splitlines():
            if line.startswith("pids "):
                return [int(p) for p in line.split()[1:]]
        time.sleep(0.05)
    raise AssertionError("the job never logged its pids")


def start_background_job(tmp: Path, *extra: str) -> str:
    """A job with a child process, both sleeping; returns the run id once it is running."""
    spec = job_spec(tmp, ["bash", "-c", f"sleep 300 & {PIDS}; wait"])
    run_id = ok(tmp, "run", "create", "-f", spec, *extra).strip()
    assert wait_status(tmp, run_id, {"running"})["status"] == "running"
    return run_id


def test_non_zero_exit_fails_the_run(tmp_path: Path) -> None:
    spec = job_spec(tmp_path, ["bash", "-c", f"sleep 300 & {PIDS}; exit 3"])
    done = runyard(tmp_path, "run", "exec", "-f", spec)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith("failed: non-zero exit code 3")
    run_id = done.stderr.split()[1]
    doc = show(tmp_path, run_id)
    assert (doc["status"], doc["status_reason"]) == ("failed", "non-zero exit code 3")
    assert doc["steps"][0]["attempts"][0]["outputs"] == {"exit_code": 3}
    assert gone(pids_from_logs(tmp_path, run_id))


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    spec = job_spec(tmp_path, ["no-such-program-here", "--flag"])
    done = runyard(tmp_path, "run", "exec", "-f", spec)
    assert done.returncode == 1
    doc = show(tmp_path, done.stderr.split()[1])
    assert doc["status"] == "failed"
    assert doc["status_reason"] == "failed to start: command 'no-such-program-here' not found"


def test_timeout_kills_the_process_tree(tmp_path: Path) -> None:
    run_id = start_background_job(tmp_path, "--timeout", "1.5s")
    pids = pids_from_logs(tmp_path, run_id)
    doc = wait_status(tmp_path, run_id, {"failed", "succeeded", "canceled"})
    assert (doc["status"], doc["status_reason"]) == ("failed", "timed out after 1.5s")
    assert gone(pids)


def test_cancel_is_asynchronous_and_kills_the_tree(tmp_path: Path) -> None:
    run_id = start_background_job(tmp_path)
    pids = pids_from_logs(tmp_path, run_id)
    watcher = subprocess.Popen([RUNYARD, "run", "watch", run_id], cwd=tmp_path,
                               env=environment(), stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None
    first = watcher.stdout.readline()  # the watcher follows the run before it is canceled
    done = runyard(tmp_path, "run", "cancel", run_id)
    assert done.returncode == 0 and "canceling" in done.stderr
    out, _ = watcher.communicate(timeout=60)
    statuses = [json.loads(line)["status"] for line in (first + out).splitlines()]
    assert statuses[0] in ("running", "canceling") and statuses[-1] == "canceled"
    assert gone(pids)
    again = runyard(tmp_path, "run", "cancel", run_id)
    assert again.returncode != 0 and "only pending or running" in again.stderr


def test_cancel_after_sigterm_is_ignored_uses_sigkill(tmp_path: Path) -> None:
    spec = job_spec(tmp_path, ["bash", "-c", f"trap '' TERM; {PIDS}; while :; do sleep 0.1; done"])
    run_id = ok(tmp_path, "run", "create", "-f", spec).strip()
    pids = pids_from_logs(tmp_path, run_id)
    ok(tmp_path, "run", "cancel", run_id)
    assert wait_status(tmp_path, run_id, {"canceled"})["status"] == "canceled"
    assert gone(pids[:1])


def test_killing_the_supervisor_makes_the_run_lost(tmp_path: Path) -> None:
    run_id = start_background_job(tmp_path)
    pids = pids_from_logs(tmp_path, run_id)
    supervisor = show(tmp_path, run_id)["owner"]["pid"]
    os.kill(supervisor, signal.SIGKILL)
    assert gone([supervisor])
    doc = wait_status(tmp_path, run_id, {"lost"}, limit=10)
    assert doc["status"] == "lost" and "is gone" in doc["status_reason"]
    watched = ok(tmp_path, "run", "watch", run_id).splitlines()
    assert json.loads(watched[-1])["status"] == "lost"
    assert gone(pids[:1])  # the job's main process dies with its supervisor
    for pid in pids[1:]:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_failed_job_leaves_its_output_incomplete(tmp_path: Path) -> None:
    (tmp_path / "run.yml").write_text(
        "job:\n  codespec:\n    buffers: {outputs: [output]}\n"
        '    command: ["bash", "-c", "echo partial > $OUTPUT_PIPE; exit 2"]\n')
    done = runyard(tmp_path, "run", "exec", "-f", "run.yml")
    assert done.returncode == 1
    out = show(tmp_path, done.stderr.split()[1])["parameters"]["buffers"]["output"]
    read = runyard(tmp_path, "buffer", "read", out)
    assert read.returncode != 0 and "incomplete" in read.stderr and read.stdout == ""
    forced = runyard(tmp_path, "buffer", "read", out, "--incomplete")
    assert forced.stdout == "partial\n" and forced.returncode != 0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_sandbox_isolation(tmp_path: Path) -> None:
    script = ("touch /usr/x 2>/dev/null && echo usr-writable; touch /etc/x 2>/dev/null && "
              "echo etc-writable; touch here && echo work-writable; "
              "echo $$ > /tmp/pid && echo tmp-private; "
              "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), 2)' "
              "2>/dev/null && echo online; ls /proc | grep -c '^[0-9]' | sed 's/^/procs /'")
    spec = job_spec(tmp_path, ["bash", "-c", script])
    done = runyard(tmp_path, "run", "exec", "--executor", "sandbox", "-f", spec)
    assert done.returncode == 0, done.stderr
    logs = ok(tmp_path, "run", "logs", done.stderr.split()[1]).splitlines()
    assert "work-writable" in logs and "tmp-private" in logs
    assert not {"usr-writable", "etc-writable", "online"} & set(logs)
    procs = [int(line.split()[1]) for line in logs if line.startswith("procs ")]
    assert procs and procs[0] < 10, "the sandbox has a pid namespace of its own"
    assert not Path("/tmp/pid").exists() or Path("/tmp/pid").read_text().strip() != "2"


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_sandbox_streams_buffers_and_runs_the_venv_python(tmp_path: Path) -> None:
    import sys

    (tmp_path / "run.yml").write_text(
        "job:\n  codespec:\n    buffers: {inputs: [input], outputs: [output]}\n"
        f'    command: ["{sys.executable}", "-c", "import os; data = open(os.environ['
        "'INPUT_PIPE'], 'rb').read(); "
        "open(os.environ['OUTPUT_PIPE'], 'wb').write(data.upper())\"]\n")
    done = runyard(tmp_path, "run", "exec", "--executor", "sandbox", "-f", "run.yml",
                   stdin="quiet\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "QUIET\n"


def peak_rss(cli: int, stop: threading.Event, found: dict[int, int]) -> None:
    """Sample the CLI and its supervisor (forked from it, so with the same command line), or
    from the agent's copy that runs the command (with the agent's command line)."""
    cmdline = psutil.Process(cli).cmdline()
    while not stop.is_set():
        for proc in psutil.process_iter(["cmdline", "memory_info"]):
            ours = proc.info["cmdline"] == cmdline or "runyard.cli.agent" in (
                proc.info["cmdline"] or [])
            if ours and proc.info["memory_info"] is not None:
                found[proc.pid] = max(found.get(proc.pid, 0), proc.info["memory_info"].rss)
        time.sleep(0.05)


@pytest.mark.slow
def test_a_1_gib_stream_through_run_exec_in_bounded_memory(tmp_path: Path) -> None:
    spec = tmp_path / "cat.yml"
    spec.write_text("job:\n  codespec:\n    buffers: {inputs: [input], outputs: [output]}\n"
                    '    command: ["bash", "-c", "cat $INPUT_PIPE > $OUTPUT_PIPE"]\n')
    size = 1 << 30
    producer = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
    proc = subprocess.Popen([RUNYARD, "run", "exec", "-f", str(spec)], cwd=tmp_path,
                            env=environment(), stdin=producer.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert producer.stdout is not None
    producer.stdout.close()
    stop, found = threading.Event(), {}
    sampler = threading.Thread(target=peak_rss, args=(proc.pid, stop, found))
    sampler.start()
    counted = subprocess.run(["wc", "-c"], stdin=proc.stdout, capture_output=True, text=True)
    proc.wait(timeout=600)
    stop.set()
    sampler.join()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert int(counted.stdout) == size
    assert len(found) >= 2, "both the CLI and its supervisor were measured"
    assert max(found.values()) < 200 << 20, found
