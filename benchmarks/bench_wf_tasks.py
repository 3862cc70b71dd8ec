"""Trivial tasks and workflows for ``bench_workflows.py`` (importable, for the runtimes)."""

from __future__ import annotations

from runyard import task, workflow


def inc_plain(x: int) -> int:
    return x + 1


def sum_plain(values: list[int]) -> int:
    return sum(values)


def nudge_plain(x: float) -> float:
    return x * 1.000001 + 0.5


inc = task(inc_plain)
total = task(sum_plain)
nudge = task(nudge_plain)


@workflow
def chain(n: int) -> object:
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


@workflow
def float_chain(n: int) -> object:
    """The chain with float results: floats are never shared as encoded values (a result
    that is an int, a bool, None or a short string is encoded once per process)."""
    x = 0.0
    for _ in range(n):
        x = nudge(x)
    return x


@workflow
def fan(n: int) -> object:
    return total([inc(i) for i in range(n)])
