"""What the SQL stores do by a stream's positions: append the rows a copy lacks, append a
batch once per key, read from a position, and read one metric's series.

Mixed into ``SqlStore``. Every write runs in one transaction with the run's row locked
(PostgreSQL) or the database's write lock held (SQLite), so two writers never both append the
same rows or both take one batch key; reads are key ranges of the append-only tables
(``sqlstreams``, ``sqlseries``), never the whole stream.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from runyard.model import Event, LogLine
from runyard.stores import sqlmetrics, sqlseries, sqlstreams
from runyard.stores.batch import records_of
from runyard.stores.sqlschema import Dialect, Tx, id_range
from runyard.stores.streams import (
    MetricColumns,
    MetricSeries,
    check_batch_key,
    check_bounds,
    stream_kind,
    stream_slice,
)


class SqlPositions:
    """Mixed into ``SqlStore``, which gives the dialect, transactions and ``_seq``."""

    dialect: Dialect

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]: ...

    @abstractmethod
    def _seq(self, tx: Tx, run_id: str, lock: str = "") -> int: ...

    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        """Count and append in one write transaction (see ``sqlstreams``)."""
        stream_kind(kind)
        with self._transaction(True) as tx:
            low, high = id_range(self._seq(tx, run_id, self.dialect.lock_edit))
            have = sqlstreams.count_rows(tx, kind, low, high)
            missing = items[max(have - start, 0):]
            if missing:
                sqlstreams.insert_rows(tx, kind, low, high, have, missing)
        return len(missing)

    def read_from(self, run_id: str, kind: str, start: int, limit: int | None = None
                  ) -> list[Any]:
        """Only the rows asked for, by key range (see ``sqlstreams.read_from``)."""
        start, end = stream_slice(start, limit)
        stream_kind(kind)
        with self._transaction(False) as tx:
            low, high = id_range(self._seq(tx, run_id))
            return sqlstreams.read_from(tx, kind, low, high, start, end)

    def read_metric_series(
        self, run_id: str, name: str, *,
        steps: tuple[int | None, int | None] | None = None,
        times: tuple[float | None, float | None] | None = None,
    ) -> MetricSeries:
        """The chunks of ``name`` joined into arrays (see ``sqlseries``)."""
        steps, times = check_bounds(steps, "steps"), check_bounds(times, "times")
        with self._transaction(False) as tx:
            low, high = id_range(self._seq(tx, run_id))
            return sqlseries.read(tx, low, high, name, steps, times)

    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool:
        """Rows and key in one write transaction, every value checked (and packed) first."""
        check_batch_key(key)
        size, packed = (0, []) if metrics is None else sqlmetrics.packed_columns(
            *(list(column) for column in metrics))
        streams = (("events", records_of(Event, events, "event")),
                   ("logs", records_of(LogLine, logs, "log line")))
        with self._transaction(True) as tx:
            low, high = id_range(self._seq(tx, run_id, self.dialect.lock_edit))
            if not sqlstreams.key_recorded(tx, run_id, key):
                return False
            if packed:
                sqlmetrics.insert(tx, low, high, size, packed)
            for kind, rows in streams:
                if rows:
                    have = sqlstreams.count_rows(tx, kind, low, high)
                    sqlstreams.insert_rows(tx, kind, low, high, have, rows)
        return True
