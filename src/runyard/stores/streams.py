"""The append-only streams of a run (metrics, events, logs): the records a batch and a series
travel in, and the checks of what their store operations take (``append_batch``'s key,
``read_from``'s position, ``read_metric_series``'s bounds), shared by every backend.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeVar

from runyard.errors import ValidationError
from runyard.model import Metric

# The append-only streams of a run, as ``append_missing`` names them.
STREAMS = ("metrics", "events", "logs")


def stream_kind(kind: str) -> str:
    """``kind`` if it names one of ``STREAMS``, else a ValidationError."""
    if kind not in STREAMS:
        raise ValidationError(f"unknown stream {kind!r}; use one of: {', '.join(STREAMS)}")
    return kind


class MetricColumns(NamedTuple):
    """A batch of metrics as four equally long columns (what ``append_metric_columns``
    takes), for ``append_batch``."""

    names: Sequence[str]
    values: Sequence[float]
    steps: Sequence[int | None]
    times: Sequence[float]


class MetricSeries(NamedTuple):
    """One metric's values in append order, as packed arrays (equally long).

    ``steps`` is an ``array('q')``: a value logged with no step has 0 there and its index in
    ``no_step`` (ascending), so a plot or the server can take the arrays as they are (numpy
    ``frombuffer``) and mask the few without a step; ``step_list()`` gives Python's view.
    """

    values: array[float]  # 'd'
    steps: array[int]  # 'q'; 0 where the step is None (see ``no_step``)
    times: array[float]  # 'd'
    no_step: Sequence[int] = ()  # indices of the values logged with step None

    def step_list(self) -> list[int | None]:
        """The steps as a list, with None where a value has no step."""
        steps: list[int | None] = list(self.steps.tolist())
        for at in self.no_step:
            steps[at] = None
        return steps


def series_of(metrics: Iterable[Metric]) -> MetricSeries:
    """``metrics`` (of one name) as a ``MetricSeries``."""
    values, steps, times, no_step = array("d"), array("q"), array("d"), []
    for at, m in enumerate(metrics):
        values.append(m.value)
        times.append(m.time)
        if m.step is None:
            no_step.append(at)
            steps.append(0)
        else:
            steps.append(m.step)
    return MetricSeries(values, steps, times, no_step)


def in_ranges(step: int | None, time: float,
              steps: tuple[int | None, int | None] | None,
              times: tuple[float | None, float | None] | None) -> bool:
    """Whether a metric at ``step`` and ``time`` is within the inclusive bounds (a None
    bound is open; a metric with no step is outside any ``steps`` range)."""
    if steps is not None and (step is None or not _within(step, steps)):
        return False
    return times is None or _within(time, times)


def _within(x: float, bounds: tuple[float | None, float | None]) -> bool:
    low, high = bounds
    return (low is None or x >= low) and (high is None or x <= high)


_BATCH_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def check_batch_key(key: object) -> str:
    """``key`` if it may name a batch for ``append_batch``, else a ValidationError."""
    if not isinstance(key, str) or not _BATCH_KEY.fullmatch(key):
        raise ValidationError(f"invalid batch key {str(key)[:140]!r}: use 1-128 letters, digits, "
                              "'.', '_', ':' or '-'")
    return key


def stream_slice(start: int, limit: int | None) -> tuple[int, int | None]:
    """``start`` and the end (exclusive, None: to the end) of a ``read_from``, checked."""
    if not _whole(start):
        raise ValidationError(f"stream position {start!r:.40} must be a whole number >= 0")
    if limit is None:
        return start, None
    if not _whole(limit):
        raise ValidationError(f"stream limit {limit!r:.40} must be a whole number >= 0")
    return start, start + limit


def _whole(number: object) -> bool:
    return isinstance(number, int) and not isinstance(number, bool) and number >= 0


B = TypeVar("B", int, float)


def check_bounds(bounds: tuple[B | None, B | None] | None, what: str
                 ) -> tuple[B | None, B | None] | None:
    """``read_metric_series``'s ``steps`` or ``times``: None, or two numbers or Nones."""
    if bounds is None:
        return None
    if not isinstance(bounds, tuple) or len(bounds) != 2 or not all(map(_bound, bounds)):
        raise ValidationError(f"{what} bounds {bounds!r:.60} must be (low, high): numbers or "
                              "None, both inclusive")
    return bounds


def _bound(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and value == value)
