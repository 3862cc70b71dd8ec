"""Helpers for the recorded-run tests: a workspace, a store context, the CLI in a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runyard.core.context import StoreContext, open_context

SRC = str(Path(__file__).resolve().parents[1] / "src")


def workspace(root: Path, files: dict[str, str]) -> Path:
    """A workspace folder (with runyard.yaml) holding ``files``."""
    folder = root / "ws"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runyard.yaml").write_text("")
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def context(root: Path, url: str | None = None) -> StoreContext:
    return open_context(url or f"sqlite://{root}/store/runyard.db")


def cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "RUNYARD_STORE": url, "PYTHONPATH": SRC, **extra}
    env.pop("RUNYARD_CONFIG", None)
    return env


def runyard(args: list[str], url: str, cwd: Path, timeout: float = 120,
            **extra: str) -> subprocess.CompletedProcess[str]:
    """``runyard ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, text=True,
                          capture_output=True, env=cli_env(url, **extra), timeout=timeout)
