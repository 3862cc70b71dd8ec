"""A step as the JSON text of ``step_to_dict``, its fields' types checked on the way.

The SQL stores keep each step as one JSON document. A step may come from an untrusted client
(through a server), so ``step_json`` checks what ``Step`` only annotates (a number is a number,
metadata is a dict) and refuses anything else with a ``ValidationError``, before the store's
own encoder writes it in one call: the text decodes to the same ``Step``. Each attempt's
``duration`` is left out; reading computes it from ``started`` and ``ended``
(``tests/test_step_json.py`` checks both, for any step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runyard.errors import ValidationError
from runyard.model import Attempt, Status, Step
from runyard.model import validate as check

_STATUSES = {s: s.value for s in Status}

__all__ = ["step_json"]


def step_json(step: Step, encode: Callable[[Any], str]) -> str:
    """``step`` as the JSON text of ``step_to_dict`` (less durations); ``encode``: the store's
    JSON encoder (it decides whether NaN and the infinities may be written). A field of the
    wrong type is a ``ValidationError``."""
    name = check.step_name(step.name)
    attempts = step.attempts
    if attempts.__class__ is not tuple:
        raise ValidationError(f"step {name!r}: attempts must be a tuple of Attempt")
    if step.kind.__class__ is not str:
        raise ValidationError(f"step {name!r}: kind must be a string")
    doc = {"name": name, "status": _status(name, step.status), "kind": step.kind,
           "created": _number(name, step.created),
           "attempts": [_attempt(name, a) for a in attempts],
           "metadata": _mapping(name, step.metadata)}
    try:
        return encode(doc)  # one call into the C encoder for the whole step
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"step {name!r} holds a value that is not plain JSON ({exc})"
                              ) from None


def _attempt(name: str, attempt: Attempt) -> dict[str, Any]:
    if attempt.__class__ is not Attempt:
        raise ValidationError(f"step {name!r}: an attempt must be an Attempt")
    number, message, started, ended = (attempt.number, attempt.message, attempt.started,
                                       attempt.ended)
    if number.__class__ is not int:
        raise ValidationError(f"step {name!r}: an attempt's number must be an int")
    if message is not None and message.__class__ is not str:
        raise ValidationError(f"step {name!r}: an attempt's message must be a string")
    return {"number": number, "status": _status(name, attempt.status),
            "started": None if started is None else _number(name, started),
            "ended": None if ended is None else _number(name, ended), "message": message,
            "inputs": _mapping(name, attempt.inputs), "outputs": _mapping(name, attempt.outputs)}


def _status(name: str, status: Any) -> str:
    try:
        return _STATUSES[status]
    except (KeyError, TypeError):
        raise ValidationError(f"step {name!r}: unknown status {status!r}") from None


def _number(name: str, value: Any) -> Any:
    if value.__class__ is float or value.__class__ is int:
        return value
    raise ValidationError(f"step {name!r}: a time must be a number, not {type(value).__name__}")


def _mapping(name: str, value: Any) -> Any:
    if value.__class__ is not dict:
        raise ValidationError(f"step {name!r}: metadata, inputs and outputs must be dicts")
    return value
