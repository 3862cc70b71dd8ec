"""The agent: ``run exec``/``run create`` handed to a warm process behave as when run directly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from commands_helpers import RUNYARD, environment, ok, show, start_agent, wait_status
from runyard.cli import agent, entry

ECHO_ENV = """\
name: echo-env
buffers: {inputs: [input], outputs: [output]}
command: ["bash", "-c", "set -eu; inp=$(cat \\"$INPUT_PIPE\\"); \\
printf '%s %s %s\\\\n' \\"$inp\\" \\"$GREETING\\" \\"$(umask)\\" > \\"$OUTPUT_PIPE\\"; \\
exit ${CODE:-0}"]
"""
SLEEPER = 'name: sleeper\ncommand: ["sleep", "60"]\n'
LIMITS = """\
name: limits
buffers: {outputs: [output]}
command: ["bash", "-c", "echo $(nice) $(ulimit -n) $(nproc) > \\"$OUTPUT_PIPE\\""]
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An agent of this test's own (its socket in ``tmp_path``), with its log."""
    sock = tmp_path / "a.sock"
    log = tmp_path / "agent.log"
    proc = start_agent(sock, log)
    env = {**environment(), "RUNYARD_AGENT_SOCKET": str(sock)}
    (tmp_path / "echo.yml").write_text(ECHO_ENV)
    (tmp_path / "sleeper.yml").write_text(SLEEPER)
    (tmp_path / "limits.yml").write_text(LIMITS)
    ok(tmp_path, "codespec", "create", "-f", "limits.yml")
    ok(tmp_path, "codespec", "create", "-f", "echo.yml")
    ok(tmp_path, "codespec", "create", "-f", "sleeper.yml")
    env["AGENT_PID"] = str(proc.pid)
    yield env, log
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=30)


def exec_echo(cwd: Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        "umask 027; echo Paul | runyard run exec -c echo-env", shell=True, cwd=cwd,
        env={**env, "GREETING": "hi", **extra}, capture_output=True, text=True, timeout=120)


def test_a_run_exec_through_the_agent_is_the_same_as_one_run_here(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, log = served
    through = exec_echo(tmp_path, env)
    here = exec_echo(tmp_path, env, RUNYARD_AGENT="0")
    assert log.read_text().count("runs run exec -c echo-env") == 1  # only the first
    for done in (through, here):
        assert done.returncode == 0, done.stderr
        assert done.stdout == "Paul hi 0027\n"  # stdin, environment and umask of the caller
        assert "succeeded" in done.stderr
    failed = exec_echo(tmp_path, env, CODE="3")
    assert failed.returncode != 0 and failed.stdout == "Paul hi 0027\n"
    assert "exit code 3" in failed.stderr and failed.stderr.strip().startswith("run ")
    assert failed.returncode == exec_echo(tmp_path, env, CODE="3", RUNYARD_AGENT="0").returncode


def test_the_job_keeps_the_callers_niceness_limits_and_cpus(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, log = served
    command = "ulimit -n 512; taskset -c 0 nice -n 3 runyard run exec -c limits"
    outs = [subprocess.run(command, shell=True, cwd=tmp_path, env={**env, **extra},
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120) for extra in ({}, {"RUNYARD_AGENT": "0"})]
    assert "runs run exec -c limits" in log.read_text()
    for done in outs:
        assert done.returncode == 0, done.stderr
        assert done.stdout == "3 512 1\n"


def test_bad_input_through_the_agent_is_one_line_and_non_zero(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, log = served
    done = subprocess.run([RUNYARD, "run", "exec", "-c", "no-such-spec"], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "no-such-spec" in log.read_text()


def start_sleeper(cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``run exec`` of a job that sleeps a minute, and its run id (once it is created)."""
    proc = subprocess.Popen([RUNYARD, "run", "exec", "-c", "sleeper"], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    return proc, proc.stderr.readline().split()[1]


def test_ctrl_c_is_passed_on_and_cancels_the_run(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, _ = served
    proc, run_id = start_sleeper(tmp_path, env)
    wait_status(tmp_path, run_id, {"running"})
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "interrupted" in err and "canceled" in err
    assert show(tmp_path, run_id)["status"] == "canceled"


def test_a_killed_caller_takes_its_copy_with_it(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, log = served
    proc, run_id = start_sleeper(tmp_path, env)
    # Killed once its run runs under its supervisor (killed before, the copy takes the
    # launch with it, and the run ends failed: it never started).
    assert wait_status(tmp_path, run_id, {"running"})["status"] == "running"
    deadline = time.monotonic() + 30
    while "copy " not in log.read_text():  # the agent logs it after the fork
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    copy = int(log.read_text().split("copy ")[-1].split()[0])
    assert psutil.pid_exists(copy)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(copy) and psutil.Process(copy).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the copy outlived its caller"
        time.sleep(0.05)
    ok(tmp_path, "run", "cancel", run_id)  # the run itself goes on, as it would without agent
    assert wait_status(tmp_path, run_id, {"canceled"})["status"] == "canceled"


def test_without_an_agent_the_command_runs_here_and_starts_one(tmp_path: Path) -> None:
    sock = tmp_path / "b.sock"
    env = {**environment(), "RUNYARD_AGENT_SOCKET": str(sock)}
    (tmp_path / "echo.yml").write_text(ECHO_ENV)
    ok(tmp_path, "codespec", "create", "-f", "echo.yml")
    assert exec_echo(tmp_path, env).stdout == "Paul hi 0027\n"
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert time.monotonic() < deadline, "no agent was started"
        time.sleep(0.05)
    assert exec_echo(tmp_path, env).stdout == "Paul hi 0027\n"
    for proc in psutil.process_iter(["cmdline"]):
        if str(sock) in (proc.info["cmdline"] or []):
            proc.terminate()


def test_a_stuck_agent_is_waited_for_a_while_and_the_command_never_runs_twice(
        tmp_path: Path, served: tuple[dict[str, str], Path]) -> None:
    env, log = served
    agent_pid = int(env["AGENT_PID"])
    os.kill(agent_pid, signal.SIGSTOP)
    try:
        done = exec_echo(tmp_path, env)  # waits entry.READY_S, then runs here
    finally:
        os.kill(agent_pid, signal.SIGCONT)
    assert done.returncode == 0 and done.stdout == "Paul hi 0027\n", done.stderr
    deadline = time.monotonic() + 30
    # it takes the old request late (and declines it: the caller it came from is gone)...
    while "declined a caller: it" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    time.sleep(1.0)
    listed = ok(tmp_path, "run", "list", "--json")
    assert listed.count('"kind": "command"') == 1, listed  # ...and does not run it


def test_only_run_exec_and_create_are_handed_over() -> None:
    assert entry._for_agent(["run", "exec", "-c", "x"])
    assert entry._for_agent(["--store", "sqlite:///x.db", "run", "create"])
    assert entry._for_agent(["--store=sqlite:///x.db", "run", "exec"])
    assert not entry._for_agent(["run", "list"])
    assert not entry._for_agent(["exec", "run"])
    assert not entry._for_agent(["workflow", "run", "m:f"])
    assert not entry._for_agent([])


def test_the_agent_notices_a_changed_installation(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(agent, "PACKAGE", package)
    before = agent.code_stamp()
    os.utime(package / "a.py", ns=(1, before[1] + 1_000_000))
    assert agent.code_stamp() != before
    (package / "b.py").write_text("")
    assert agent.code_stamp()[0] == 2
