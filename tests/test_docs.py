"""Docs cannot drift: every ```python and ```bash block of README.md and docs/*.md is executed.

The blocks of one document run in order, in one fresh working directory, with the venv's
``runyard`` first on PATH and no runyard settings inherited. Blocks fenced as anything else
(``sh`` for install commands, ``yaml``, ``text``) are shown, not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(python|bash)[^\n]*\n(.*?)^```", re.M | re.S)


def blocks(doc: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(doc.read_text(encoding="utf-8"))]


def environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(workdir / "home")
    return env


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_examples_run(doc: Path, tmp_path: Path) -> None:
    found = blocks(doc)
    if doc.name == "README.md":
        assert len(found) >= 5, "the README's tour lost its runnable examples"
    env = environment(tmp_path)
    for number, (lang, code) in enumerate(found, 1):
        if lang == "python":
            cmd = [sys.executable, "-c", code]
        else:
            cmd = ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (
            f"{doc.name} block {number} ({lang}) failed:\n{code}\n--- stdout\n{done.stdout}"
            f"\n--- stderr\n{done.stderr}"
        )
