"""The workflow commands from a user's project folder: run, then re-run from the same folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOWS = '''
from runyard import task, workflow

@task
def square(x):
    return x * x

@task
def total(xs):
    return sum(xs)

@workflow
def squares(n: int):
    return total([square(i) for i in range(n)])
'''


def runyard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_rerun_finds_the_workflow_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    first = runyard(tmp_path, "workflow", "run", "flows:squares", "--param", "n=4")
    assert first.returncode == 0, first.stderr
    run_id, result = first.stdout.split()
    assert result == "14"
    again = runyard(tmp_path, "run", "rerun", run_id)
    assert again.returncode == 0, again.stderr
    assert "the DAG is unchanged" in again.stderr
    new_id = again.stdout.split()[0]
    shown = json.loads(runyard(tmp_path, "run", "show", new_id, "--json").stdout)
    assert shown["origin"] == run_id
    assert shown["internals"]["task_runs"] == {"executed": 0, "reused": 5}
