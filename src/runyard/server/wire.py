"""The wire schemas of metrics, events and log lines, and reading their bodies fast.

A metric batch is 10,000 numbers or more: a pydantic model of it would cost more than the
store's write. So these bodies are parsed by orjson from the raw bytes and decoded by
``runyard.model.codec`` (the functions the http store encodes with), and their JSON Schemas
are declared here by hand (``body_schema``/``answer_schema``) so the OpenAPI document still
says what each route takes and gives. Any malformed body is a ValidationError (400).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from runyard.errors import ValidationError
from runyard.model.validate import MAX_STEP, MIN_STEP

INLINE_PARSE = 1 << 20  # bytes of JSON parsed on the event loop (about 1 ms); more in a thread

NUMBER = {"anyOf": [{"type": "number"},
                    {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]}
STEP = {"anyOf": [{"type": "integer", "minimum": MIN_STEP, "maximum": MAX_STEP},
                  {"type": "null"}]}
TIME = {"type": "number"}
STRING = {"type": "string"}


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties,
            "additionalProperties": False}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


COLUMNS = obj(["names", "values", "steps", "times"], names=array(STRING),
              values=array(NUMBER), steps=array(STEP), times=array(TIME))
METRIC = obj(["name", "value", "time"], name=STRING, value=NUMBER, step=STEP, time=TIME)
EVENT = obj(["time", "message"], time=TIME, message=STRING, level=STRING)
LOGLINE = obj(["time", "text"], time=TIME, text=STRING, stream=STRING,
              step={"anyOf": [STRING, {"type": "null"}]})
BATCH = obj([], metrics={"anyOf": [COLUMNS, {"type": "null"}]}, events=array(EVENT),
            logs=array(LOGLINE))
ITEM = {"anyOf": [METRIC, EVENT, LOGLINE]}
SUMMARY = obj(["name", "count", "last", "last_step", "minimum", "maximum"], name=STRING,
              count={"type": "integer"}, last=NUMBER, last_step=STEP, minimum=NUMBER,
              maximum=NUMBER)
DOWNSAMPLED = obj(["name", "x", "buckets", "count", "points"], name=STRING,
                  x={"type": "string", "enum": ["step", "time"]},
                  buckets={"type": "integer"}, count={"type": "integer"},
                  points=obj(["x", "y"], x=array({"type": "number"}), y=array(NUMBER)))


def body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``schema`` (required)."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


def answer_schema(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    """A ``responses`` entry for a JSON answer of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


async def read_object(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The request's JSON body: an object with no keys but ``allowed``."""
    import orjson

    raw = await request.body()
    try:
        if len(raw) < INLINE_PARSE:
            data = orjson.loads(raw)
        else:  # a big body is parsed off the event loop, which serves the watch streams too
            data = await run_in_threadpool(orjson.loads, raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the request body is not valid JSON ({exc}); send a JSON "
                              "object") from None
    if not isinstance(data, dict):
        raise ValidationError(f"the request body must be a JSON object, not "
                              f"{type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r} in the body; the fields are "
                              f"{', '.join(sorted(allowed))}")
    return data


def whole(data: dict[str, Any], key: str, *, default: int | None = None,
          low: int = 0, high: int = MAX_STEP) -> int:
    """``data[key]`` if it is a whole number in [low, high], else a ValidationError."""
    value = data.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise ValidationError(f"{key} must be a whole number from {low} to {high}")
    return value
