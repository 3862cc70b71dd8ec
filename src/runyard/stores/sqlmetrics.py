"""Metrics in the SQL stores, kept in chunks: one row per name per appended batch.

One SQL row per value made appending cost a few microseconds a value; a chunk row holds up to
``CHUNK`` values of one name as packed arrays (little-endian float64 values and times, int64
steps), so a batch of 50,000 values is a handful of rows. Chunks live in the run's id range of
``metric_chunks`` like the other append-only tables (``sqlschema.SPAN``).

Order across names: each batch takes the next ``size`` positions of the run (``seq`` up to
``next_seq``); a chunk says where its values sit among them, either evenly spaced (``pos`` and
``stride``: a batch of one name, or names repeating in a fixed pattern as a dict logged per
step gives) or listed (``positions``). Reading a whole run puts every value back at its
position. Steps that are ``None`` are listed in ``step_nulls`` (``steps`` is NULL when all
are). Each chunk also keeps what ``summarise`` needs: its smallest and largest value ignoring
NaN (NULL when all are NaN), whether its first value is NaN, and its last value and step; a
run's summaries are an SQL aggregate over its chunks.

This module holds no connection: the statements run in a ``sqlschema.Tx`` of the caller.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from runyard.errors import StoreError, ValidationError
from runyard.model import Metric
from runyard.model import validate as check
from runyard.stores.base import MetricSummary

if TYPE_CHECKING:
    from runyard.stores.sqlschema import Tx

CHUNK = 1 << 16  # values per chunk row at most
LITTLE = sys.byteorder == "little"
NUMBERS = frozenset({float, int})
Packed = tuple[Any, ...]  # a chunk row without its id, seq and next_seq

CHUNK_TABLE = """CREATE TABLE IF NOT EXISTS metric_chunks (id {int} PRIMARY KEY,
    name {key} NOT NULL, n {int} NOT NULL, seq {int} NOT NULL, next_seq {int} NOT NULL,
    pos {int} NOT NULL, stride {int}, lo {real}, hi {real}, first_nan {int} NOT NULL,
    last {real}, last_step {int}, positions {blob}, steps {blob}, step_nulls {blob},
    vals {blob} NOT NULL, times {blob} NOT NULL)"""
COLUMNS = ("id", "name", "n", "seq", "next_seq", "pos", "stride", "lo", "hi", "first_nan",
           "last", "last_step", "positions", "steps", "step_nulls", "vals", "times")
INSERT = (f"INSERT INTO metric_chunks ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' * len(COLUMNS))})")
IN_RANGE = "id BETWEEN ? AND ?"
LAST = f"SELECT id, next_seq FROM metric_chunks WHERE {IN_RANGE} ORDER BY id DESC LIMIT 1"
SELECT = ("SELECT name, n, seq, next_seq, pos, stride, positions, steps, step_nulls, vals, "
          f"times FROM metric_chunks WHERE {IN_RANGE}")
# count, last value and step (of the newest chunk), min and max ignoring NaN, and whether the
# series starts with NaN (``summarise`` keeps NaN as min and max then)
SUMMARIES = f"""
    SELECT s.name, s.n, l.last, l.last_step, s.lo, s.hi, f.first_nan
    FROM (SELECT name, SUM(n) AS n, MIN(lo) AS lo, MAX(hi) AS hi,
                 MIN(id) AS first_id, MAX(id) AS last_id
          FROM metric_chunks WHERE {IN_RANGE} GROUP BY name) s
    JOIN metric_chunks l ON l.id = s.last_id
    JOIN metric_chunks f ON f.id = s.first_id"""

_make = partial(tuple.__new__, Metric)  # a Metric without NamedTuple's slower constructor


# -- appending ---------------------------------------------------------------------------------
def packed_batch(metrics: Sequence[Sequence[Any]]) -> tuple[int, list[Packed]]:
    """A batch of ``(name, value, step, time)`` records as chunk rows, and its size.

    Checked first as ``doc.checked_metrics`` checks a batch (``ValidationError`` before
    anything is written).
    """
    if not metrics:
        return 0, []
    _check_records(metrics)
    names, values, steps, times = (list(map(itemgetter(i), metrics)) for i in range(4))
    return packed_columns(names, values, steps, times)


def packed_columns(
    names: list[Any], values: list[Any], steps: list[Any], times: list[Any]
) -> tuple[int, list[Packed]]:
    """``packed_batch`` for a batch given as four equally long columns: names and values are
    checked here, steps and times while they are packed (``_packed``)."""
    if not names:
        return 0, []
    if not len(names) == len(values) == len(steps) == len(times):
        raise ValidationError("metric columns (names, values, steps, times) must be equally long")
    distinct = _checked_names(names)
    values = _checked_values(names, values)
    packed: list[Packed] = []
    columns: tuple[Sequence[Any], Sequence[Any], Sequence[Any]]
    for name, pos, stride, where in _groups(names, distinct):
        if where is not None:
            columns = _take(where, values), _take(where, steps), _take(where, times)
        elif stride == 1:  # the whole batch
            columns = values, steps, times
        else:
            columns = values[pos::stride], steps[pos::stride], times[pos::stride]
        packed.extend(_chunks(name, pos, stride, where, *columns))
    return len(names), packed


def _check_records(metrics: Sequence[Any]) -> None:
    try:
        widths = set(map(len, metrics))
    except TypeError:
        widths = set()
    if widths != {4}:
        raise ValidationError("metrics are (name, value, step, time) records")


def _take(where: list[int], column: list[Any]) -> Sequence[Any]:
    if len(where) == 1:
        return [column[where[0]]]
    taken: tuple[Any, ...] = itemgetter(*where)(column)
    return taken


def insert(tx: Tx, low: int, high: int, size: int, packed: list[Packed]) -> None:
    """Insert a batch's chunks after the last of the run whose id range is ``low``-``high``;
    the caller holds the lock that keeps other writers of this run out."""
    last = tx.one(LAST, (low, high))
    first, base = (low, 0) if last is None else (int(last[0]) + 1, int(last[1]))
    if first + len(packed) - 1 > high:
        raise StoreError(f"the run has no room for {len(packed)} more metric chunks")
    tx.many(INSERT, [(first + i, row[0], row[1], base, base + size, *row[2:])
                     for i, row in enumerate(packed)])


def _checked_names(names: list[Any]) -> set[str]:
    try:
        distinct = set(names)
    except TypeError:  # an unhashable name: not a string
        distinct = set()
        for name in names:
            distinct.add(check.metric_name(name))
    for name in distinct:
        check.metric_name(name)
    return distinct


def _checked_values(names: list[Any], values: list[Any]) -> list[Any]:
    if set(map(type, values)) <= NUMBERS:
        return values
    return [v if v.__class__ is float else check.metric_value(n, v)
            for n, v in zip(names, values, strict=True)]


def _groups(
    names: list[str], distinct: set[str]
) -> list[tuple[str, int, int | None, list[int] | None]]:
    """Where each name's values are in the batch: ``(name, first, stride, None)`` when evenly
    spaced, else ``(name, first, None, positions)``; in batch order within each name."""
    k = len(distinct)
    if k == 1:
        return [(names[0], 0, 1, None)]
    head = names[:k]
    if len(set(head)) == k:  # the names repeat in a fixed pattern?
        spaced: list[tuple[str, int, int | None, list[int] | None]] = []
        for j, name in enumerate(head):
            column = names[j::k]
            if column.count(name) != len(column):
                break
            spaced.append((name, j, k, None))
        else:
            return spaced
    order = sorted(range(len(names)), key=names.__getitem__)  # stable: keeps batch order
    counts = Counter(names)
    groups: list[tuple[str, int, int | None, list[int] | None]] = []
    at = 0
    for name in sorted(counts):
        where = order[at : at + counts[name]]
        at += counts[name]
        groups.append((name, where[0], None, where))
    return groups


def _chunks(name: str, pos: int, stride: int | None, where: list[int] | None,
            values: Sequence[Any], steps: Sequence[Any], times: Sequence[Any]) -> list[Packed]:
    if where is None and len(values) <= CHUNK:  # the common case: no copies
        return [_packed(name, (pos, stride, None), values, steps, times)]
    out = []
    for at in range(0, len(values), CHUNK):
        cut = slice(at, at + CHUNK)
        if where is None:
            assert stride is not None
            place: tuple[int, int | None, bytes | None] = (pos + stride * at, stride, None)
        else:
            place = (where[at], None, _pack("q", where[cut]))
        out.append(_packed(name, place, values[cut], steps[cut], times[cut]))
    return out


def _packed(name: str, place: tuple[int, int | None, bytes | None], values: Sequence[Any],
            steps: Sequence[Any], times: Sequence[Any]) -> Packed:
    try:
        vals = _pack("d", values)
    except struct.error:
        raise ValidationError(f"metric {name!r} has a value too large for a float") from None
    try:
        packed_times = _pack("d", times)
    except struct.error:
        bad = next((t for t in times if not _fits("d", t)), times[0])
        raise ValidationError(f"metric {name!r} has time {bad!r}; log epoch seconds") from None
    total = sum(times)
    if total - total != 0.0:  # a time is NaN or infinite (or they add up past float64)
        for t in times:
            check.metric_time(name, t)
    packed_steps, nulls = _packed_steps(name, steps)
    total = sum(values)  # NaN when a value is NaN (or when +inf and -inf meet)
    if total == total:
        low, high, first_nan = min(values), max(values), 0
    else:
        numbers = [v for v in values if v == v]
        low, high = (min(numbers), max(numbers)) if numbers else (None, None)
        first_nan = int(values[0] != values[0])
    last = values[-1]
    return (name, len(values), place[0], place[1], _real(low), _real(high), first_nan,
            _real(last), steps[-1], place[2], packed_steps, nulls, vals, packed_times)


def _fits(code: str, value: Any) -> bool:
    """Whether ``value`` packs as one ``code`` value (``d``: a float64, ``q``: an int64)."""
    try:
        struct.pack(f"<{code}", value)
    except struct.error:
        return False
    return True


def _packed_steps(name: str, steps: Sequence[Any]) -> tuple[bytes | None, bytes | None]:
    try:
        return _pack("q", steps), None
    except struct.error:  # a None among them, or something that is not a 64-bit integer
        pass
    nulls = [i for i, s in enumerate(steps) if s is None]
    if len(nulls) == len(steps):
        return None, None
    try:
        return _pack("q", [0 if s is None else s for s in steps]), _pack("q", nulls)
    except struct.error:
        bad = next(s for s in steps if s is not None and not _fits("q", s))
        if isinstance(bad, int):
            raise ValidationError(
                f"metric {name!r} has a step beyond 64-bit integers") from None
        raise ValidationError(
            f"metric {name!r} has step {bad!r}; steps are whole numbers or None"
        ) from None


def _real(value: Any) -> float | None:
    """A float column's value; NaN is stored as NULL (as SQLite stores it anyway)."""
    return None if value is None or value != value else float(value)


def _pack(code: str, items: Sequence[Any]) -> bytes:
    """``items`` as little-endian ``code`` values (``struct.error`` if one does not fit)."""
    return struct.pack(f"<{len(items)}{code}", *items)


def _unpack(code: str, data: bytes) -> list[Any]:
    unpacked = array(code)
    unpacked.frombytes(data)
    if not LITTLE:
        unpacked.byteswap()
    return unpacked.tolist()


# -- reading -----------------------------------------------------------------------------------
def read(tx: Tx, low: int, high: int, name: str | None) -> list[Metric]:
    """The metrics of the run whose id range is ``low``-``high`` (of one name), in append
    order."""
    if name is not None:
        rows = tx.all(f"{SELECT} AND name = ? ORDER BY id", (low, high, name))
        return [m for row in rows for m in _metrics(row)]
    return placed(tx.all(f"{SELECT} ORDER BY id", (low, high)))


def placed(rows: list[Any]) -> list[Metric]:
    """The metrics of whole batches' chunk rows (``SELECT``, in id order), each put back at
    its position: the first is the first batch's first value."""
    if not rows:
        return []
    start = int(rows[0][2])
    out: list[Any] = [None] * (int(rows[-1][3]) - start)
    for row in rows:
        metrics = _metrics(row)
        first, stride, positions = int(row[4]) + int(row[2]) - start, row[5], row[6]
        if stride is not None:
            out[first : first + stride * (len(metrics) - 1) + 1 : stride] = metrics
        else:
            base = int(row[2]) - start
            for at, metric in zip(_unpack("q", positions), metrics, strict=True):
                out[base + at] = metric
    if sum(int(row[1]) for row in rows) != len(out):  # never made here; keep it readable
        out = [m for m in out if m is not None]
    return out


def read_span(tx: Tx, low: int, high: int, start: int, end: int | None) -> list[Metric]:
    """The run's metrics at positions ``start`` up to ``end`` (exclusive; None: all), in
    append order: only the chunks of the batches that hold them are read."""
    if end is None:
        rows = tx.all(f"{SELECT} AND next_seq > ? ORDER BY id", (low, high, start))
    else:
        rows = tx.all(f"{SELECT} AND next_seq > ? AND seq < ? ORDER BY id",
                      (low, high, start, end))
    if not rows:
        return []
    at = start - int(rows[0][2])
    return placed(rows)[at : None if end is None else end - start + at]


def _metrics(row: Sequence[Any]) -> list[Metric]:
    name, n, steps, nulls, vals, times = row[0], int(row[1]), row[7], row[8], row[9], row[10]
    if steps is None:
        step_list: Iterable[Any] = repeat(None, n)
    else:
        step_list = _unpack("q", steps)
        if nulls is not None:
            for at in _unpack("q", nulls):
                step_list[at] = None
    return list(map(_make, zip(repeat(name), _unpack("d", vals), step_list, _unpack("d", times))))


def summaries(tx: Tx, low: int, high: int) -> list[MetricSummary]:
    """What ``base.summarise`` gives for the run whose id range is ``low``-``high``."""
    out = []
    for name, count, last, last_step, lo, hi, starts_with_nan in tx.all(SUMMARIES, (low, high)):
        if starts_with_nan:  # ``summarise`` keeps NaN as min and max then
            lo = hi = None
        out.append(MetricSummary(name, int(count), _stored(last), last_step, _stored(lo),
                                 _stored(hi)))
    return sorted(out, key=lambda s: s.name)


def _stored(value: float | None) -> float:
    return math.nan if value is None else value


# -- from schema version 1: one row per value in ``metrics`` -------------------------------------
def migrate_rows(tx: Tx, ranges: Iterable[tuple[int, int]]) -> None:
    """Move every run's rows of the old ``metrics`` table into chunks, then drop it."""
    for low, high in ranges:
        rows = tx.all(f"SELECT name, value, step, time FROM metrics WHERE {IN_RANGE} ORDER BY id",
                      (low, high))
        batch = [(n, _stored(v), s, _stored(t)) for n, v, s, t in rows]
        for at in range(0, len(batch), CHUNK):
            size, packed = packed_batch(batch[at : at + CHUNK])
            insert(tx, low, high, size, packed)
    tx.run("DROP TABLE metrics")
