"""One metric's series read from the SQL stores' chunks straight into arrays.

``read_metric_series`` is what plots and the server's downsampling read: a million values of
one name. Their chunks (``sqlmetrics``) already hold the values, steps and times as packed
little-endian arrays, so they are joined with ``array.frombytes``, never unpacked into one
Python object per value. A step or time range is cut chunk by chunk: by numpy when it is
installed (the server has it), else in Python, where a chunk wholly inside is taken as it is,
one wholly outside skipped, and only a chunk across a bound is sifted value by value.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runyard.stores.sqlmetrics import IN_RANGE, LITTLE
from runyard.stores.streams import MetricSeries

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
    ``steps`` bounds).

    Each chunk's bytes go straight onto the arrays (``_Parts``): no Python object per value.
    """
    out = _Parts()
    numpy = None if steps is None and times is None else _numpy()
    for row in tx.all(SERIES, (low, high, name)):
        n, step_bytes, nulls, vals, time_bytes = int(row[0]), *row[1:]
        if steps is None and times is None:
            out.add(n, vals, step_bytes, time_bytes, nulls)
            continue
        if numpy is not None:
            _sift(numpy, out, (n, step_bytes, nulls, vals, time_bytes), steps, times)
            continue
        chunk = _Chunk(n, step_bytes, nulls, vals, time_bytes)
        keep = _kept(chunk, steps, times)
        if keep is None:  # all of it
            out.add(n, vals, step_bytes, time_bytes, nulls)
        elif keep:
            out.take(chunk, keep)
    return out.series()


class _Parts:
    """A series being gathered as its chunks' packed bytes, copied once into arrays made at
    their full size (``_joined``): joining the bytes first, or growing the arrays chunk by
    chunk, costs a second copy into fresh memory (about 1.5x the time for 1,000,000 values
    in 100 chunks; ``benchmarks/bench_series.py``)."""

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.steps: list[bytes] = []
        self.times: list[bytes] = []
        self.no_step: list[int] = []
        self.count = 0

    def add(self, n: int, vals: bytes, steps: bytes | None, times: bytes,
            nulls: bytes | None) -> None:
        """A whole chunk, as stored."""
        self.values.append(vals)
        self.times.append(times)
        if steps is None:
            self.steps.append(bytes(8 * n))
            self.no_step.extend(range(self.count, self.count + n))
        else:
            self.steps.append(steps)
            if nulls is not None:
                self.no_step.extend(self.count + at for at in _ints(nulls))
        self.count += n

    def take(self, chunk: _Chunk, keep: list[int]) -> None:
        """The values of ``chunk`` at the indices ``keep``."""
        nulls = set(chunk.nulls)
        self.no_step.extend(self.count + i for i, at in enumerate(keep) if at in nulls)
        for parts, source in ((self.values, chunk.values), (self.steps, chunk.steps),
                              (self.times, chunk.times)):
            picked = array(source.typecode, [source[at] for at in keep])
            if not LITTLE:
                picked.byteswap()  # (as stored: the whole is swapped back at the end)
            parts.append(picked.tobytes())
        self.count += len(keep)

    def series(self) -> MetricSeries:
        values, times = array("d", bytes(8)), array("d", bytes(8))
        steps = array("q", bytes(8))
        for column, parts in ((values, self.values), (steps, self.steps),
                              (times, self.times)):
            _joined(column, parts, self.count)
        return MetricSeries(values, steps, times, self.no_step)


def _joined(column: array[float] | array[int], parts: list[bytes], count: int) -> None:
    """Make ``column`` (an array of one element) ``count`` long, holding ``parts``."""
    column *= count
    view = memoryview(column).cast("B")
    at = 0
    for part in parts:
        view[at : at + len(part)] = part
        at += len(part)
    view.release()
    if not LITTLE:
        column.byteswap()


def _numpy() -> Any:
    """numpy if it is installed (the server's extra), else None: bounds are then checked in
    Python, value by value where a chunk crosses one."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _sift(np: Any, out: _Parts, row: tuple[int, bytes | None, bytes | None, bytes, bytes],
          steps: Bounds, times: Bounds) -> None:
    """Add the values of one chunk row within the bounds, sifted by numpy: 1,000,000 values
    (in 100 chunks) cut to half their time range read in 45-70 ms against 135-225 ms for
    the Python loop, on a loaded 2-core machine (``benchmarks/bench_series.py`` setup)."""
    n, step_bytes, nulls, vals, time_bytes = row
    at = np.frombuffer(time_bytes, "<f8")
    step = np.zeros(n, "<i8") if step_bytes is None else np.frombuffer(step_bytes, "<i8")
    no_step = np.full(n, step_bytes is None)
    if nulls is not None:
        no_step[np.frombuffer(nulls, "<i8")] = True
    keep = np.ones(n, bool)
    for column, bounds in ((step, steps), (at, times)):
        if bounds is not None:
            low, high = bounds
            if low is not None:
                keep &= column >= low
            if high is not None:
                keep &= column <= high
    if steps is not None:
        keep &= ~no_step
    if keep.all():
        out.add(n, vals, step_bytes, time_bytes, nulls)
        return
    where = np.flatnonzero(keep)
    out.no_step.extend((out.count + np.flatnonzero(no_step[where])).tolist())
    out.values.append(np.frombuffer(vals, "<f8")[where].tobytes())
    out.steps.append(step[where].tobytes())
    out.times.append(at[where].tobytes())
    out.count += len(where)


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
