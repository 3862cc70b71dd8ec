"""Processes started apart and let go at the same moment: how the tests make races happen.

Each child runs a script that prints ``ready`` once it is set up, then waits for a line on its
standard input before it does the racy part.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def race(script: str, args: list[str], count: int, *, cwd: Path | None = None,
         env: dict[str, str] | None = None, timeout: float = 300) -> list[str]:
    """Run ``count`` copies of ``script`` (``python -c script *args``), release them together
    once all are ready, and return their standard outputs (each must exit 0)."""
    children = [subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
                for _ in range(count)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err
        outputs.append(out)
    return outputs
