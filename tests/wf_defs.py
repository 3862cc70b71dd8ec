"""Tasks and workflows the workflow tests import (importable, so other processes find them)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runyard import task, workflow


@task(max_attempts=3)
def add(x: int, y: int) -> int:
    print(f"adding {x} and {y}")
    return x + y


@task
def total(values: list[int]) -> int:
    return sum(values)


@task
def scale(x: int, factor: int = 2) -> int:
    return x * factor


@workflow
def chain(n: int) -> object:
    acc = 0
    for i in range(n):
        acc = add(acc, i)
    return acc


@workflow
def fan(n: int) -> object:
    return total([add(i, 1) for i in range(n)])


@task(max_attempts=3)
def flaky(marker: str) -> str:
    """Fails on the first two attempts (counted in files next to ``marker``), then succeeds."""
    count = len(list(Path(marker).parent.glob(Path(marker).name + ".*"))) + 1
    Path(f"{marker}.{count}").touch()
    if count < 3:
        raise RuntimeError(f"attempt {count} fails")
    return f"ok after {count}"


@workflow
def flaky_flow(marker: str) -> object:
    return flaky(marker)


@task(max_attempts=2)
def broken(x: int) -> int:
    print("about to fail", file=sys.stderr)
    raise ValueError(f"cannot handle {x}")


@task
def record_failure(task_run: str, error: str) -> str:
    Path(os.environ["WF_FAILURE_NOTE"]).write_text(f"{task_run}: {error}")
    return task_run


@workflow(on_failure=record_failure)
def failing(x: int) -> object:
    return scale(broken(add(x, 1)))


@task
def sleepy(seconds: float, marker: str) -> str:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


@workflow
def slow(seconds: float, marker: str) -> object:
    return sleepy(seconds, marker)


@task
def big(n: int) -> bytes:
    return b"x" * n


@task
def size(data: bytes) -> int:
    return len(data)


@workflow
def big_flow(n: int) -> object:
    return size(big(n))


@workflow
def pair(a: int, b: int) -> object:
    return {"sum": add(a, b), "scaled": scale(a, factor=b)}
