"""A task run's step record as JSON text, made from its parts without building a ``Step``.

The recorder writes every task run's step (``RunStore.upsert_step_docs``) as the JSON of
``step_to_dict(step)``. Encoding that dictionary whole is most of what writing a step costs,
so the text is put together here instead, from pieces that are mostly made once: a step's
metadata head (task, hashes, inputs) when the task run is prepared, a value's record when the
value is made. What comes out is what the stores' own JSON encoder writes for ``step_to_dict``
(ASCII, no spaces) less each attempt's ``duration``, which reading computes again: it decodes
to the same ``Step`` (the tests check it).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as quote
from typing import Any

_INFINITY = float("inf")
_dumps = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode

__all__ = ["attempt_json", "digest_json", "dumps", "meta_head", "meta_start", "number", "quote"]


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
    inputs_json, outputs_json)`` (the digests already JSON), as JSON, less ``duration``:
    reading an attempt computes that from ``started`` and ``ended``."""
    num, status, started, ended, message, inputs, outputs = attempt
    if (started.__class__ is float and ended.__class__ is float
            and -_INFINITY < started < _INFINITY and -_INFINITY < ended < _INFINITY):
        times = f'"started":{started!r},"ended":{ended!r}'
    else:
        times = f'"started":{number(started)},"ended":{number(ended)}'
    shown = "null" if message is None else quote(message)
    return (f'{{"number":{num!r},"status":"{status._value_}",{times},"message":{shown},'
            f'"inputs":{inputs},"outputs":{outputs}}}')


def digest_json(name: str, digest: str | None) -> str:
    """``{name: digest}`` as JSON: an attempt's output."""
    return "{" + quote(name) + (":null}" if digest is None else ":" + quote(digest) + "}")


def meta_start(task: str, task_hash: str) -> str:
    """The start of a task run's metadata up to its key: the same for every run of a task."""
    return '{"task":' + quote(task) + ',"task_hash":' + quote(task_hash) + ',"key":'


def meta_head(start: str, key: str, inputs_json: str) -> str:
    """The start of a task run's metadata (closed by the caller, after any later keys):
    ``start`` (``meta_start``'s), then the task run's key and inputs."""
    return start + quote(key) + ',"inputs":' + inputs_json
