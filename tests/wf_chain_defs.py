"""Chains for the tests of task runs submitted ahead on Ray (importable by Ray's workers)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from runyard import task, workflow
from wf_defs import flaky


@task
def note(value: str, folder: str) -> str:
    """Leaves one new file per execution in ``folder``, named after its input; returns the
    input and a ``!``."""
    (Path(folder) / f"ran-{value.replace(' ', '_')}-{uuid.uuid4().hex[:8]}").touch()
    return value + "!"


@task
def gated(folder: str) -> str:
    """Says it started, then waits (at most a minute) for the test to open its gate."""
    (Path(folder) / "started").touch()
    deadline = time.monotonic() + 60
    while not (Path(folder) / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "through"


@workflow
def flaky_then_notes(marker: str, folder: str) -> object:
    return note(note(note(flaky(marker), folder), folder), folder)


@workflow
def gated_then_note(folder: str) -> object:
    return note(note(gated(folder), folder), folder)


def plus_one(x: int, earlier: int) -> int:
    return x + earlier + 1


def boom() -> int:
    raise ValueError("boom")
