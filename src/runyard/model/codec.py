"""Plain-dict (JSON-ready) forms of the records, and back. Round trips are identities.

The wire forms of metrics, events and log lines live here too (stdlib only), so the server and
the http store encode and decode them with the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from runyard.errors import ValidationError
from runyard.model.records import (
    Artifact,
    Attempt,
    Event,
    Kind,
    LogLine,
    Metric,
    Owner,
    RunRecord,
    Stage,
    Step,
)
from runyard.model.status import Status


def run_to_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "folder": run.folder,
        "kind": run.kind.value,
        "status": run.status.value,
        "status_reason": run.status_reason,
        "description": run.description,
        "tags": sorted(run.tags),
        "metadata": run.metadata,
        "parameters": run.parameters,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        "heartbeat": run.heartbeat,
        "owner": None if run.owner is None else owner_to_dict(run.owner),
        "code": run.code,
        "environment": run.environment,
        "config": run.config,
        "origin": run.origin,
        "resources": run.resources,
        "internals": run.internals,
    }


# What a workflow run kept in its metadata (and its plan in its config) before runs had
# ``internals``: moved there when such a run is read (``lift_internals``).
LEGACY_INTERNALS = ("workflow", "dag_hash", "dag", "results", "task_runs", "rerun")


def lift_internals(metadata: dict[str, Any], config: dict[str, Any]
                   ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A workflow run's metadata, config and internals as written before runs had
    ``internals``, moved to where they are kept now (the stores upgrade old run logs so)."""
    internals = {k: metadata[k] for k in LEGACY_INTERNALS if k in metadata}
    if "plan" in config:
        internals["plan"] = config["plan"]
    kept = {k: v for k, v in metadata.items() if k not in internals}
    return kept, {k: v for k, v in config.items() if k != "plan"}, internals


def run_from_dict(data: dict[str, Any]) -> RunRecord:
    owner = data.get("owner")
    metadata = dict(data.get("metadata") or {})
    config = dict(data.get("config") or {})
    internals = data.get("internals")
    if internals is None and data.get("kind") == "workflow":  # written by an older runyard
        metadata, config, internals = lift_internals(metadata, config)
    return RunRecord.of_fields({
        "id": data["id"],
        "name": data["name"],
        "folder": data.get("folder", "/"),
        "kind": Kind(data.get("kind", "tracked")),
        "status": Status(data.get("status", "created")),
        "status_reason": data.get("status_reason"),
        "description": data.get("description"),
        "tags": frozenset(data.get("tags") or ()),
        "metadata": metadata,
        "parameters": dict(data.get("parameters") or {}),
        "created": data["created"],
        "started": data.get("started"),
        "ended": data.get("ended"),
        "heartbeat": data.get("heartbeat"),
        "owner": None if owner is None else owner_from_dict(owner),
        "code": data.get("code"),
        "environment": dict(data.get("environment") or {}),
        "config": config,
        "origin": data.get("origin"),
        "resources": dict(data.get("resources") or {}),
        "internals": dict(internals or {}),
    })


def owner_to_dict(owner: Owner) -> dict[str, Any]:
    return {"host": owner.host, "pid": owner.pid, "started": owner.started}


def owner_from_dict(data: dict[str, Any]) -> Owner:
    return Owner(host=data["host"], pid=int(data["pid"]), started=float(data["started"]))


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status.value,
        "started": attempt.started,
        "ended": attempt.ended,
        "duration": attempt.duration,
        "message": attempt.message,
        "inputs": attempt.inputs,
        "outputs": attempt.outputs,
    }


def attempt_from_dict(data: dict[str, Any]) -> Attempt:
    return Attempt(
        number=int(data["number"]),
        status=Status(data.get("status", "running")),
        started=data.get("started"),
        ended=data.get("ended"),
        message=data.get("message"),
        inputs=dict(data.get("inputs") or {}),
        outputs=dict(data.get("outputs") or {}),
    )


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "name": step.name,
        "status": step.status.value,
        "kind": step.kind,
        "created": step.created,
        "attempts": [attempt_to_dict(a) for a in step.attempts],
        "metadata": step.metadata,
    }


def step_from_dict(data: dict[str, Any]) -> Step:
    return Step(
        name=data["name"],
        status=Status(data.get("status", "created")),
        kind=data.get("kind", "task"),
        created=data["created"],
        attempts=tuple(attempt_from_dict(a) for a in data.get("attempts") or ()),
        metadata=dict(data.get("metadata") or {}),
    )


def artifact_to_dict(artifact: Artifact) -> dict[str, Any]:
    return {
        "name": artifact.name,
        "hash": artifact.hash,
        "size": artifact.size,
        "stage": artifact.stage.value,
        "time": artifact.time,
        "step": artifact.step,
        "category": artifact.category,
    }


def artifact_from_dict(data: dict[str, Any]) -> Artifact:
    return Artifact(
        name=data["name"],
        hash=data["hash"],
        size=int(data["size"]),
        stage=Stage(data.get("stage", "put")),
        time=data["time"],
        step=data.get("step"),
        category=data.get("category"),
    )


# --- the wire forms of metrics, events and log lines (the server and the http store) -------
# JSON has no NaN or infinities (orjson writes them as null), so a metric value that is one is
# sent as the string "NaN", "Infinity" or "-Infinity". Decoders check shapes and types and
# raise ValidationError with one line; value ranges are the store's to check.

SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_number(value: float) -> float | str:
    """``value`` as JSON can carry it: itself if finite, else its special string."""
    if value - value == 0.0:  # finite: inf - inf and nan - nan are NaN
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_number(value: object, what: str = "metric value") -> float:
    """A JSON number, or one of the special strings, as a float."""
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if isinstance(value, str) and value in SPECIAL_NUMBERS:
        return SPECIAL_NUMBERS[value]
    raise ValidationError(
        f"{what} {_short(value)} is not a number; send a number or 'NaN', 'Infinity', '-Infinity'")


def encode_numbers(values: Iterable[float]) -> list[float | str]:
    return [v if v - v == 0.0 else encode_number(v) for v in values]


def decode_numbers(values: object, what: str = "metric value") -> list[float]:
    items = _list_of(values, what + "s")
    if all(type(v) is float for v in items):
        return items
    return [decode_number(v, what) for v in items]


def decode_time(value: object, what: str = "time") -> float:
    """A finite JSON number (epoch seconds) as a float; times have no special strings."""
    if (type(value) is float or type(value) is int) and value - value == 0:
        return float(value)
    raise ValidationError(f"{what} {_short(value)} is not a finite number; send epoch seconds")


def decode_times(values: object, what: str = "time") -> list[float]:
    items = _list_of(values, what + "s")
    if all(type(v) is float and v - v == 0.0 for v in items):
        return items
    return [decode_time(v, what) for v in items]


def columns_to_dict(names: Sequence[str], values: Iterable[float],
                    steps: Sequence[int | None], times: Iterable[float]) -> dict[str, Any]:
    """Metric columns (``MetricColumns``' fields) as their wire dict."""
    return {"names": list(names), "values": encode_numbers(values),
            "steps": list(steps), "times": list(times)}


def columns_from_dict(data: object
                      ) -> tuple[list[str], list[float], list[int | None], list[float]]:
    """The wire dict of metric columns as (names, values, steps, times): equally long lists."""
    if not isinstance(data, dict):
        raise ValidationError("metric columns must be an object with names, values, steps, times")
    names = _list_of(data.get("names"), "metric names")
    values = decode_numbers(data.get("values"))
    steps = _list_of(data.get("steps"), "metric steps")
    times = decode_times(data.get("times"), "metric time")
    if not len(names) == len(values) == len(steps) == len(times):
        raise ValidationError(
            "metric columns names, values, steps and times must be equally long; "
            f"got {len(names)}, {len(values)}, {len(steps)}, {len(times)}")
    if not all(type(n) is str for n in names):
        raise ValidationError("metric names must be strings")
    if not all(s is None or type(s) is int for s in steps):
        raise ValidationError("metric steps must be whole numbers or null")
    return names, values, steps, times


def metrics_to_columns(metrics: Iterable[Metric]) -> dict[str, Any]:
    """Metric records as one wire dict of columns."""
    rows = list(metrics)
    return columns_to_dict([m.name for m in rows], [m.value for m in rows],
                           [m.step for m in rows], [m.time for m in rows])


def metrics_from_columns(data: object) -> list[Metric]:
    return [Metric(*row) for row in zip(*columns_from_dict(data), strict=True)]


def metric_to_dict(metric: Metric) -> dict[str, Any]:
    return {"name": metric.name, "value": encode_number(metric.value),
            "step": metric.step, "time": metric.time}


def metric_from_dict(data: object) -> Metric:
    data = _dict_of(data, "a metric", ("name", "value", "time"))
    step = data.get("step")
    if not isinstance(data["name"], str) or not (step is None or type(step) is int):
        raise ValidationError(
            "a metric's name must be a string and its step a whole number or null")
    return Metric(data["name"], decode_number(data["value"]), step,
                  decode_time(data["time"], "metric time"))


def event_to_dict(event: Event) -> dict[str, Any]:
    return {"time": event.time, "message": event.message, "level": event.level}


def event_from_dict(data: object) -> Event:
    data = _dict_of(data, "an event", ("time", "message"))
    message, level = data["message"], data.get("level", "info")
    if not isinstance(message, str) or not isinstance(level, str):
        raise ValidationError("an event's message and level must be strings")
    return Event(decode_time(data["time"], "event time"), message, level)


def logline_to_dict(line: LogLine) -> dict[str, Any]:
    return {"time": line.time, "text": line.text, "stream": line.stream, "step": line.step}


def logline_from_dict(data: object) -> LogLine:
    data = _dict_of(data, "a log line", ("time", "text"))
    text, stream, step = data["text"], data.get("stream", "stdout"), data.get("step")
    if not isinstance(text, str) or not isinstance(stream, str):
        raise ValidationError("a log line's text and stream must be strings")
    if step is not None and not isinstance(step, str):
        raise ValidationError("a log line's step must be a step name (a string) or null")
    return LogLine(decode_time(data["time"], "log line time"), text, stream, step)


def events_from_list(items: object) -> list[Event]:
    return [event_from_dict(item) for item in _list_of(items, "events")]


def loglines_from_list(items: object) -> list[LogLine]:
    return [logline_from_dict(item) for item in _list_of(items, "log lines")]


def _list_of(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(f"{what} must be a JSON array, not {type(value).__name__}")
    return value


def _dict_of(value: object, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object, not {type(value).__name__}")
    missing = [key for key in required if key not in value]
    if missing:
        raise ValidationError(f"{what} lacks {', '.join(map(repr, missing))}; send every field")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
