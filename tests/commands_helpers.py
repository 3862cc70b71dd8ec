"""Running the real ``runyard`` command line in a working directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

RUNYARD = str(Path(sys.executable).parent / "runyard")

HELLO = """\
name: hello
image: ubuntu            # optional here; used by container executors
buffers:
  inputs: ["input"]
  outputs: ["output"]
command: ["bash", "-c", "set -euo pipefail; inp=$(cat \\"$INPUT_PIPE\\"); \\
echo \\"Hello ${inp}\\" > \\"$OUTPUT_PIPE\\""]
"""


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def runyard(cwd: Path, *args: str, stdin: bytes | str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([RUNYARD, *args], cwd=cwd, env=environment(), input=data,
                          capture_output=True, timeout=timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def ok(cwd: Path, *args: str, stdin: bytes | str | None = None) -> str:
    done = runyard(cwd, *args, stdin=stdin)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def show(cwd: Path, run_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ok(cwd, "run", "show", run_id, "--json"))
    return doc


def wait_status(cwd: Path, run_id: str, wanted: set[str], limit: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        doc = show(cwd, run_id)
        if doc["status"] in wanted or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)


def job_spec(tmp: Path, command: list[str], name: str = "job.yml", **job: Any) -> str:
    import yaml

    path = tmp / name
    path.write_text(yaml.safe_dump({"job": {"codespec": {"command": command}, **job}}))
    return str(path)


def gone(pids: list[int], limit: float = 10) -> bool:
    """Every pid has exited (zombies count as gone), within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and not _zombie(p)]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def start_agent(sock: Path, log: Path) -> subprocess.Popen[bytes]:
    """A ``run exec`` agent of a test's own, listening on ``sock`` once this returns; its
    output goes to ``log``."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "runyard.cli.agent", str(sock)],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return proc

