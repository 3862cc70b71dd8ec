"""One metric's series read from the SQL stores' chunks straight into arrays.

``read_metric_series`` is what plots and the server's downsampling read: a million values of
one name. Their chunks (``sqlmetrics``) already hold the values, steps and times as packed
little-endian arrays, so they are joined with ``array.frombytes``, never unpacked into one
Python object per value. A step or time range is cut chunk by chunk: a chunk wholly inside
is taken as it is, one wholly outside skipped, and only a chunk across a bound is sifted
value by value.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runyard.stores.base import MetricSeries
from runyard.stores.sqlmetrics import IN_RANGE, LITTLE

if TYPE_CHECKING:
    from runyard.stores.sqlschema import Tx

SERIES = f"""SELECT n, steps, step_nulls, vals, times FROM metric_chunks
    WHERE {IN_RANGE} AND name = ? ORDER BY id"""
Bounds = tuple[float | None, float | None] | None


class _Chunk:
    """One chunk row as arrays (steps 0 where None; ``nulls``: their indices)."""

    __slots__ = ("n", "nulls", "steps", "times", "values")

    def __init__(self, n: int, steps: bytes | None, nulls: bytes | None, vals: bytes,
                 times: bytes) -> None:
        self.n = n
        self.values, self.times = _floats(vals), _floats(times)
        self.steps = _ints(bytes(8 * n) if steps is None else steps)
        if steps is None:
            self.nulls: Sequence[int] = range(n)
        else:
            self.nulls = () if nulls is None else _ints(nulls)


def read(tx: Tx, low: int, high: int, name: str, steps: Bounds, times: Bounds) -> MetricSeries:
    """The values of ``name`` in the run whose id range is ``low``-``high``, in append order,
    within the inclusive ``steps`` and ``times`` bounds (a value with no step is outside any
    ``steps`` bounds)."""
    out = MetricSeries(array("d"), array("q"), array("d"), [])
    no_step = out.no_step
    assert isinstance(no_step, list)
    for row in tx.all(SERIES, (low, high, name)):
        chunk = _Chunk(int(row[0]), *row[1:])
        keep = _kept(chunk, steps, times)
        if keep is None:  # all of it
            no_step.extend(len(out.values) + at for at in chunk.nulls)
            out.values.extend(chunk.values)
            out.steps.extend(chunk.steps)
            out.times.extend(chunk.times)
        elif keep:
            _take(out, chunk, keep)
    return out


def _kept(chunk: _Chunk, steps: Bounds, times: Bounds) -> list[int] | None:
    """The indices of the chunk's values within the bounds (None: every one)."""
    whole = True
    if steps is not None:
        if len(chunk.nulls) == chunk.n:
            return []
        inside = _inside(chunk.steps, steps)
        if inside is False:
            return []
        whole = inside is True and not chunk.nulls
    if times is not None:
        inside = _inside(chunk.times, times)
        if inside is False:
            return []
        whole = whole and inside is True
    if whole:
        return None
    nulls = set(chunk.nulls) if steps is not None else set()
    return [at for at in range(chunk.n)
            if at not in nulls and _within(chunk.steps[at], steps)
            and _within(chunk.times[at], times)]


def _inside(column: array[int] | array[float], bounds: tuple[float | None, float | None]
            ) -> bool | None:
    """True: the whole column is within ``bounds``; False: none of it; None: some."""
    low, high = bounds
    smallest, largest = min(column), max(column)
    if (low is not None and largest < low) or (high is not None and smallest > high):
        return False
    if (low is None or smallest >= low) and (high is None or largest <= high):
        return True
    return None


def _within(x: float, bounds: Bounds) -> bool:
    if bounds is None:
        return True
    low, high = bounds
    return (low is None or x >= low) and (high is None or x <= high)


def _take(out: MetricSeries, chunk: _Chunk, keep: list[int]) -> None:
    nulls = set(chunk.nulls)
    base = len(out.values)
    assert isinstance(out.no_step, list)
    out.no_step.extend(base + i for i, at in enumerate(keep) if at in nulls)
    out.values.extend(chunk.values[at] for at in keep)
    out.steps.extend(chunk.steps[at] for at in keep)
    out.times.extend(chunk.times[at] for at in keep)


def _floats(data: bytes) -> array[float]:
    out = array("d")
    out.frombytes(data)
    if not LITTLE:
        out.byteswap()
    return out


def _ints(data: bytes) -> array[int]:
    out = array("q")
    out.frombytes(data)
    if not LITTLE:
        out.byteswap()
    return out
