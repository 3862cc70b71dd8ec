"""Reading MLflow's requests and writing its answers: bodies, query strings, numbers, times.

MLflow's client sends JSON made from protobuf messages: ids are strings, times integer
milliseconds since the epoch, int64 fields numbers (a string of digits is taken too, as
protobuf's own JSON writes them), and a double that is NaN or infinite the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``; answers use the same forms. A GET carries the same fields
in its query string (a list as a repeated parameter). Every malformed value is an
``INVALID_PARAMETER_VALUE`` that names the field.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from runyard.server.mlflow.errors import invalid

SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf,
           "nan": math.nan, "inf": math.inf, "-inf": -math.inf}
INT64 = (-(2**63), 2**63 - 1)


async def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``)."""
    import orjson

    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("the request body is not valid JSON; send a JSON object") from None
    if not isinstance(data, dict):
        raise invalid(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def query_of(request: Request) -> dict[str, Any]:
    """A GET's fields: one value each, or a list for a repeated parameter."""
    fields: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in fields:
            held = fields[key]
            fields[key] = [*held, value] if isinstance(held, list) else [held, value]
        else:
            fields[key] = value
    return fields


def text(data: dict[str, Any], key: str, *, required: bool = False, limit: int = 100_000,
         default: str | None = None) -> str | None:
    value = data.get(key)
    if value is None or (value == "" and required):
        if required:
            raise invalid(f"missing value for required parameter '{key}'")
        return default
    if not isinstance(value, str):
        raise invalid(f"parameter '{key}' must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise invalid(f"parameter '{key}' is {len(value)} characters long; the limit is {limit}")
    return value


def whole(data: dict[str, Any], key: str, *, default: int | None = None,
          low: int = INT64[0], high: int = INT64[1]) -> int | None:
    """An int64 field (a number or a string of digits)."""
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise invalid(f"parameter '{key}' must be a whole number, not {str(value)[:40]!r}") \
                from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"parameter '{key}' must be a whole number from {low} to {high}")
    return value


def number(value: Any, what: str) -> float:
    """A double as MLflow sends it (a number, or ``"NaN"``/``"Infinity"``/``"-Infinity"``)."""
    if isinstance(value, bool):
        raise invalid(f"{what} must be a number, not a boolean")
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise invalid(f"{what} is too large for a double") from None
    if isinstance(value, str):
        if value in SPECIAL:
            return SPECIAL[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"{what} must be a number or one of NaN, Infinity, -Infinity, not "
                  f"{str(value)[:40]!r}")


def double(value: float) -> float | str:
    """A double as MLflow answers it."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A list of objects (``metrics``, ``params``, ``tags`` of a batch)."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(f"parameter '{key}' must be a list of objects")
    return value


def texts(data: dict[str, Any], key: str) -> list[str]:
    """A list of strings (one string is a list of one: a query parameter given once)."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"parameter '{key}' must be a list of strings")
    return value


def millis(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0
