"""The main job of the README's first command runs on the embedded default store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_records_and_shows_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".runyard" / "runyard.db").is_file()
    listed = subprocess.run(
        [sys.executable, "-m", "runyard", "run", "list", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )
    runs = json.loads(listed.stdout)
    assert sorted(r["kind"] for r in runs) == ["tracked", "tracked", "tracked", "workflow"]
    assert all(r["status"] == "succeeded" for r in runs)
    assert "amplitude" in done.stdout and "half_life-1" in done.stdout
