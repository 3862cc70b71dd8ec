"""A task run's step record as JSON text, made from its parts without building a ``Step``.

The recorder writes every task run's step (``RunStore.upsert_step_docs``) as the JSON of
``step_to_dict(step)``. Encoding that dictionary whole is most of what writing a step costs,
so the text is put together here instead, from pieces that are mostly made once: a step's
metadata head (task, hashes, inputs) when the task run is prepared, a value's record when the
value is made. What comes out decodes to exactly what ``step_to_dict`` gives (the tests check
it), as the stores' own JSON encoder writes it (ASCII, no spaces).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as quote
from typing import Any

_INFINITY = float("inf")
_dumps = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode

__all__ = ["attempt_json", "dumps", "meta_head", "number", "quote", "strings_json"]


def dumps(value: Any) -> str:
    """Any JSON value, as the stores write it (the slow, general way)."""
    return _dumps(value)


def number(value: float | int | None) -> str:
    if value is None:
        return "null"
    if -_INFINITY < value < _INFINITY:
        return repr(value)
    return _dumps(value)  # NaN and the infinities as the stores' encoder spells them


def strings_json(mapping: dict[str, Any]) -> str:
    """A mapping of names to strings (or ``None``): an attempt's input or output digests."""
    parts = []
    for key, value in mapping.items():
        if key.__class__ is not str or not (value is None or value.__class__ is str):
            return _dumps(mapping)
        parts.append(quote(key) + (":null" if value is None else ":" + quote(value)))
    return "{" + ",".join(parts) + "}"


def attempt_json(attempt: tuple[Any, ...]) -> str:
    """``attempt_to_dict`` of a raw attempt ``(number, status, started, ended, message,
    inputs, outputs)``, as JSON."""
    num, status, started, ended, message, inputs, outputs = attempt
    status_value: str = status._value_
    duration = None if started is None or ended is None else ended - started
    return ('{"number":' + number(num) + ',"status":"' + status_value + '","started":'
            + number(started) + ',"ended":' + number(ended) + ',"duration":' + number(duration)
            + ',"message":' + ("null" if message is None else quote(message))
            + ',"inputs":' + strings_json(inputs) + ',"outputs":' + strings_json(outputs) + "}")


def meta_head(task: str, task_hash: str, key: str, inputs_json: str) -> str:
    """The start of a task run's metadata (closed by the caller, after any later keys)."""
    return ('{"task":' + quote(task) + ',"task_hash":' + quote(task_hash) + ',"key":'
            + quote(key) + ',"inputs":' + inputs_json)
