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

__all__ = ["attempt_json", "digest_json", "dumps", "meta_head", "number", "quote"]


def dumps(value: Any) -> str:
    """Any JSON value, as the stores write it (the slow, general way)."""
    return _dumps(value)


def number(value: float | int | None) -> str:
    if value is None:
        return "null"
    if -_INFINITY < value < _INFINITY:
        return repr(value)
    return _dumps(value)  # NaN and the infinities as the stores' encoder spells them


def attempt_json(attempt: tuple[Any, ...]) -> str:
    """``attempt_to_dict`` of a raw attempt ``(number, status, started, ended, message,
    inputs_json, outputs_json)`` (the digests already JSON), as JSON."""
    num, status, started, ended, message, inputs, outputs = attempt
    status_value: str = status._value_
    if (started.__class__ is float and ended.__class__ is float
            and -_INFINITY < started < _INFINITY and -_INFINITY < ended < _INFINITY):
        times = f'"started":{started!r},"ended":{ended!r},"duration":{ended - started!r}'
    else:
        duration = None if started is None or ended is None else ended - started
        times = (f'"started":{number(started)},"ended":{number(ended)},'
                 f'"duration":{number(duration)}')
    shown = "null" if message is None else quote(message)
    return (f'{{"number":{num!r},"status":"{status_value}",{times},"message":{shown},'
            f'"inputs":{inputs},"outputs":{outputs}}}')


def digest_json(name: str, digest: str | None) -> str:
    """``{name: digest}`` as JSON: an attempt's output."""
    return "{" + quote(name) + (":null}" if digest is None else ":" + quote(digest) + "}")


def meta_head(task: str, task_hash: str, key: str, inputs_json: str) -> str:
    """The start of a task run's metadata (closed by the caller, after any later keys)."""
    return ('{"task":' + quote(task) + ',"task_hash":' + quote(task_hash) + ',"key":'
            + quote(key) + ',"inputs":' + inputs_json)
