"""The append-only streams of a run in SQL, counted, appended and read by position.

``SqlStore.append_missing`` counts the rows a run has in a stream and appends only the ones it
lacks, with the run's row locked (PostgreSQL) or the database's write lock held (SQLite): so two
copies into one store at once never both append the same rows. A run's rows are numbered densely
from the first id of its range, so the count is read from the last row, not by counting, and
``read_from`` reads rows from a position as a key range. ``append_batch`` records its key in
``batch_keys`` in the transaction that appends its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runyard.errors import StoreError
from runyard.model import Event, LogLine
from runyard.stores import sqlmetrics
from runyard.stores.sqlschema import APPEND, IN_RANGE, Tx, row_values


def count_rows(tx: Tx, kind: str, low: int, high: int) -> int:
    """How many rows of ``kind`` the run whose id range is ``low``-``high`` has."""
    if kind == "metrics":
        last = tx.one(sqlmetrics.LAST, (low, high))
        return 0 if last is None else int(last[1])
    top = tx.one(f"SELECT MAX(id) FROM {kind} WHERE {IN_RANGE}", (low, high))
    return 0 if top is None or top[0] is None else int(top[0]) - low + 1


def insert_rows(tx: Tx, kind: str, low: int, high: int, have: int, items: Sequence[Any]) -> None:
    """Append ``items`` after the run's ``have`` rows of ``kind``; the caller holds its lock."""
    if kind == "metrics":
        sqlmetrics.insert(tx, low, high, *sqlmetrics.packed_batch(items))
        return
    make = Event if kind == "events" else LogLine
    flat = row_values([make(*item) for item in items])
    first, width = low + have, len(APPEND[kind])
    if first + len(items) - 1 > high:
        raise StoreError(f"the run has no room for {len(items)} more rows in {kind}")
    flat[::width] = range(first, first + len(items))
    tx.append(kind, flat)


COLUMNS = {"events": "time, message, level", "logs": "time, text, stream, step"}


def read_from(tx: Tx, kind: str, low: int, high: int, start: int, end: int | None) -> list[Any]:
    """The rows of ``kind`` numbered ``start`` up to ``end`` (exclusive; None: to the last),
    as records: a key range of the table, never the whole stream."""
    if (end is not None and end <= start) or start > high - low:
        return []
    if end is not None and end > high - low:
        end = None
    if kind == "metrics":
        return sqlmetrics.read_span(tx, low, high, start, end)
    last = high if end is None else min(high, low + end - 1)
    rows = tx.all(f"SELECT {COLUMNS[kind]} FROM {kind} WHERE {IN_RANGE} ORDER BY id",
                  (low + start, last))
    make = Event if kind == "events" else LogLine
    return [make(*row) for row in rows]


def key_recorded(tx: Tx, run_id: str, key: str) -> bool:
    """Record that the batch ``key`` of the run is appended; False if it was already (the
    caller holds the run's lock, so no other writer checks the same key meanwhile)."""
    if tx.one("SELECT 1 FROM batch_keys WHERE run_id = ? AND batch = ?", (run_id, key)):
        return False
    tx.run("INSERT INTO batch_keys (run_id, batch) VALUES (?, ?)", (run_id, key))
    return True
