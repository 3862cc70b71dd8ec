"""The append-only streams of a run in SQL, counted and appended inside one transaction.

``SqlStore.append_missing`` counts the rows a run has in a stream and appends only the ones it
lacks, with the run's row locked (PostgreSQL) or the database's write lock held (SQLite): so two
copies into one store at once never both append the same rows. A run's rows are numbered densely
from the first id of its range, so the count is read from the last row, not by counting.
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
