"""Checks of what a caller hands the tracking client, each failing with one clear line.

The hot path (``Run.log_metrics``) tests the common case inline (a ``float`` or ``int``
value, a name seen before, an ``int`` step) and calls these only for anything else.

NaN and ±infinity policy: metric values may be NaN or infinite (a diverging loss is worth
recording); they are stored as they are and read back as NaN and ±inf, and JSON output spells
them ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Metadata is JSON in every store, and
PostgreSQL's JSON has no NaN, so metadata values must be finite.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from runyard.errors import ValidationError
from runyard.model import Status
from runyard.model import validate as check

LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
INITIAL = (Status.RUNNING, Status.CREATED)


def mapping(metrics: object) -> Mapping[Any, Any]:
    if not isinstance(metrics, Mapping):
        raise ValidationError(
            f"log_metrics takes a mapping of names to numbers, like {{'loss': 0.3}}, "
            f"not {type(metrics).__name__}"
        )
    return metrics


def refusal(refused: Mapping[Any, ValidationError]) -> ValidationError:
    """The one error for a ``log_metrics`` call with bad values: the first one's error, and
    the names of the others."""
    first = next(iter(refused.values()))
    more = [repr(name) for name in list(refused)[1:]]
    others = f" (also refused: {', '.join(more[:3])}{', …' if len(more) > 3 else ''})" if (
        more) else ""
    return ValidationError(f"{first}{others}; nothing of this call was logged")


def metric_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValidationError(f"metric names are strings, not {type(name).__name__} {name!r}")
    return check.metric_name(name)


def metric_value(name: str, value: object) -> float:
    return check.metric_value(name, value)


def step(value: object) -> int:
    """A step is an integer from 0 to 2**63-1, as stored (numpy integers are fine; booleans
    are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not (
        0 <= int(value) <= check.MAX_STEP
    ):
        raise ValidationError(
            f"step must be a non-negative integer below 2**63, not {check.short(value)}")
    return int(value)


def timestamp(value: object) -> float:
    """A time is finite epoch seconds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"time must be epoch seconds (a number), not {value!r}")
    try:
        result = float(value)
    except OverflowError:  # an int beyond a float
        result = math.inf
    if not math.isfinite(result):
        raise ValidationError(
            f"time must be a finite number of epoch seconds, not {check.short(value)}")
    return result


def event(message: object, level: object) -> None:
    if not isinstance(message, str):
        raise ValidationError(f"an event message is a string, not {type(message).__name__}")
    if "\x00" in message:
        raise ValidationError(
            f"event message {check.short(message)} contains NUL (\\x00), which stores cannot "
            "keep; remove it")
    if level not in LEVELS:
        raise ValidationError(
            f"unknown event level {level!r}; use one of: {', '.join(sorted(LEVELS))}"
        )


def tags(values: object) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(f"tags are a list of strings, like ['baseline'], not {values!r}")
    return [check.tag(t) for t in values]


def plain_json(data: object, what: str) -> dict[str, Any]:
    """A mapping with string keys whose values are finite, plain JSON."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{what} must be a mapping, like {{'key': 'value'}}")
    if not all(isinstance(k, str) for k in data):
        raise ValidationError(f"{what} keys must be strings")
    check.nesting(data, what)
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"{what} must be plain JSON with finite numbers ({exc}); convert the value first"
        ) from None
    return dict(data)


def initial_status(value: object) -> Status:
    """A new run starts ``running`` or, queued for a batch system, ``created``."""
    if not isinstance(value, str | Status):
        raise ValidationError(f"status must be 'running' or 'created', not {value!r}")
    status = Status.parse(value)
    if status not in INITIAL:
        raise ValidationError(
            f"a new run starts as 'running' or 'created', not {status.value!r}; "
            "close() sets how it ends"
        )
    return status


def final_status(value: object) -> Status:
    if not isinstance(value, str | Status):
        raise ValidationError(f"status must be a status name, not {value!r}")
    status = Status.parse(value)
    if not status.is_final:
        raise ValidationError(
            f"close() ends a run as succeeded, failed or canceled, not {status.value!r}"
        )
    return status


def interval(value: object, what: str) -> float | None:
    """A positive number of seconds, or ``None`` for off."""
    if value is None:
        return None
    seconds = float(value) if isinstance(value, numbers.Real) else math.nan
    if isinstance(value, bool) or not seconds > 0:
        raise ValidationError(f"{what} must be a positive number of seconds or None (off)")
    return seconds
