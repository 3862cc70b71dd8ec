"""Writing what a run queued: batches of metrics, events and catalog entries, with retries.

The caller's queues hold finished records: metric values the client has checked as ``WIDTH``
consecutive entries ``name, value, step, time`` of a flat ``list`` that is cut from the front
(no tuple per value to make, keep and take apart), ``Event`` and ``Artifact`` in ``deque``
objects. The flusher takes up to ``BATCH`` of them at a time and appends them in one store
call; a SQL store takes the batch as four columns (``append_checked_metrics``, each column a
slice of the batch), any other gets ``Metric`` records. A failed
write is retried with back-off while the error looks passing (``StoreError``, ``OSError``);
what still cannot be written is counted per kind in ``lost``, with the first error kept, so
``Run.close`` can say exactly what was lost.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from runyard.errors import RunyardError, StoreError
from runyard.model import Artifact, Event, Metric
from runyard.stores import RunStore
from runyard.stores.sql import SqlStore

MetricField = str | float | int | None  # name, value, step and time of queued values, flat
WIDTH = 4  # entries per queued value
T = TypeVar("T")

BATCH = 50_000  # metric values per store call
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0)  # seconds between attempts at one batch
PASSING = (StoreError, OSError)
_metric = partial(tuple.__new__, Metric)  # a Metric without NamedTuple's slower constructor


def _take(queue: deque[T], most: int) -> list[T]:
    """Pop up to ``most`` entries off the left of ``queue`` (which only this thread pops),
    in C: ``popleft`` is called until ``islice`` has enough (entries are never ``None``)."""
    return list(islice(iter(queue.popleft, None), min(len(queue), most)))


class Flusher:
    """Writes batches of one run to its store; counts what could not be written."""

    def __init__(self, store: RunStore, run_id: str,
                 retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.store = store
        self.run_id = run_id
        self.retry_delays = tuple(retry_delays)
        self.lost: Counter[str] = Counter()
        self.written: Counter[str] = Counter()
        self.first_error: str | None = None

    def metrics(self, queue: list[MetricField]) -> int:
        """Cut up to ``BATCH`` values off the front of ``queue`` and write them; returns how many.

        Callers only add whole values (``WIDTH`` entries in one ``+=``, a single C-level
        operation under the GIL) and only this thread removes them, so the first ``n`` entries
        stay put between the slices and the ``del``, and ``n`` is a multiple of ``WIDTH``."""
        n = min(len(queue), BATCH * WIDTH)
        columns = tuple(queue[i:n:WIDTH] for i in range(WIDTH))
        del queue[:n]
        count = n // WIDTH
        self._write("metric values", count, lambda: self._append_metrics(columns))
        return count

    def _append_metrics(self, columns: tuple[list[Any], ...]) -> None:
        if isinstance(self.store, SqlStore):  # checked by the client: not again
            self.store.append_checked_metrics(self.run_id, *columns)
        else:
            self.store.append_metrics(self.run_id, list(map(_metric, zip(*columns, strict=True))))

    def events(self, queue: deque[Event]) -> int:
        batch = _take(queue, BATCH)
        self._write("events", len(batch), lambda: self.store.append_events(self.run_id, batch))
        return len(batch)

    def files(self, queue: deque[Artifact]) -> int:
        count = 0
        while queue:
            self._write_file(queue.popleft())
            count += 1
        return count

    def _write_file(self, artifact: Artifact) -> None:
        self._write("files", 1, lambda: self.store.add_artifact(self.run_id, artifact))

    def _write(self, kind: str, count: int, write: Callable[[], None]) -> None:
        if not count:
            return
        for delay in (*self.retry_delays, None):
            try:
                write()
            except PASSING as exc:
                if delay is None:
                    self._lose(kind, count, exc)
                    return
                time.sleep(delay)
            except RunyardError as exc:  # the run was deleted, or the data was refused
                self._lose(kind, count, exc)
                return
            else:
                self.written[kind] += count
                return

    def _lose(self, kind: str, count: int, exc: BaseException) -> None:
        self.lost[kind] += count
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"

    def lost_message(self) -> str | None:
        """One line counting what was lost, or ``None`` when everything was written."""
        if not self.lost:
            return None
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.lost.items()))
        return f"run {self.run_id}: {counts} could not be written ({self.first_error})"
