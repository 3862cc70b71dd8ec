"""What every backend shares for ``append_batch``: the checks.

A batch is checked whole before anything is written (a bad value refuses it, and its key is
not recorded), the way the plain appends check theirs; the backends then write the rows and
the key in one write (one transaction, or one replace of a run log, or under the run's lock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from runyard.errors import ValidationError
from runyard.model import Event, LogLine, Metric
from runyard.stores.base import metric_records
from runyard.stores.doc import checked_metrics
from runyard.stores.streams import MetricColumns, check_batch_key

R = TypeVar("R")
Batch = tuple[list[Metric], list[Event], list[LogLine]]


def checked_batch(key: str, metrics: MetricColumns | None, events: Sequence[Event],
                  logs: Sequence[LogLine]) -> Batch:
    """The batch as checked records (``ValidationError`` before anything is written)."""
    check_batch_key(key)
    records = [] if metrics is None else checked_metrics(metric_records(*metrics))
    return records, records_of(Event, events, "event"), records_of(LogLine, logs, "log line")


def records_of(make: Callable[..., R], items: Sequence[Any], what: str) -> list[R]:
    """``items`` as ``make`` records; a ValidationError if one has the wrong fields."""
    try:
        return [make(*item) for item in items]
    except TypeError:
        raise ValidationError(f"a {what} of a batch has the wrong fields") from None
