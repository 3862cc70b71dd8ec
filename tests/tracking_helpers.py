"""Helpers for the tracking tests: child processes that own runs, the CLI, waiting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAST = {"heartbeat_interval": None, "resources_interval": None, "flush_interval": 0.05}


@dataclass
class Result:
    code: int
    out: str
    err: str


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(extra)
    return env


def cli(*args: str, cwd: Path, timeout: float = 120, **env: str) -> Result:
    """``python -m runyard ARGS`` as a separate process, as a user would run it."""
    proc = subprocess.run(
        [sys.executable, "-m", "runyard", *args], cwd=cwd, env=child_env(**env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def show_json(url: str, ref: str, cwd: Path) -> dict[str, Any]:
    result = cli("--store", url, "run", "show", ref, "--json", cwd=cwd)
    assert result.code == 0, result.err
    doc: dict[str, Any] = json.loads(result.out)
    return doc


def start_script(code: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """Run ``code`` in a child Python; it talks to the test through its stdout lines."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=child_env(**env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def read_line(proc: subprocess.Popen[str]) -> str:
    """The child's next stdout line (its error output if it died instead)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"child exited with {proc.returncode} before answering:\n{err}")
    return line.strip()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout}s")
        time.sleep(0.02)
