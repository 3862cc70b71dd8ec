"""Trivial tasks and workflows for ``bench_workflows.py`` (importable, for the runtimes)."""

from __future__ import annotations

from runyard import task, workflow


def inc_plain(x: int) -> int:
    return x + 1


def sum_plain(values: list[int]) -> int:
    return sum(values)


inc = task(inc_plain)
total = task(sum_plain)


@workflow
def chain(n: int) -> object:
    x = 0
    for _ in range(n):
        x = inc(x)
    return x


@workflow
def fan(n: int) -> object:
    return total([inc(i) for i in range(n)])
