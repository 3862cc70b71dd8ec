"""The wire forms the ``http(s)://`` store sends: append batches, run fields, list filters.

Mirrors ``runyard.server.wire`` on the client side, over the shared encoders of
``runyard.model.codec``. A batch value that JSON cannot carry is checked as the stores check
it, so the caller gets the ValidationError a local store would give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from runyard.errors import ValidationError
from runyard.model import Event, LogLine, Metric, codec
from runyard.stores.base import RunFilter
from runyard.stores.streams import STREAMS, MetricColumns


def stream(kind: str) -> str:
    if kind not in STREAMS:
        raise ValidationError(f"unknown stream {kind!r}; use one of: {', '.join(STREAMS)}")
    return kind


ITEM_TO_DICT: dict[str, Callable[[Any], dict[str, Any]]] = {
    "metrics": codec.metric_to_dict, "events": codec.event_to_dict,
    "logs": codec.logline_to_dict}
ITEM_FROM_DICT: dict[str, Callable[[Any], Any]] = {
    "metrics": codec.metric_from_dict, "events": codec.event_from_dict,
    "logs": codec.logline_from_dict}


def encode_batch(doc: Mapping[str, Any]) -> bytes:
    """The JSON body of ``POST /runs/{id}/batch`` for ``doc`` (``metrics``: MetricColumns,
    ``events``, ``logs``: records). A value JSON cannot carry is checked as the stores check
    it, so the caller gets the same ValidationError."""
    metrics = doc.get("metrics")
    try:
        return _encoded(metrics, doc.get("events", ()), doc.get("logs", ()))
    except (TypeError, ValueError, OverflowError, AttributeError):
        pass
    if metrics is not None:
        metrics = MetricColumns(*checked_columns(metrics))
    try:
        return _encoded(metrics, doc.get("events", ()), doc.get("logs", ()))
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise ValidationError(f"a batch holds a value that is not JSON or not a record ({exc}); "
                              "log numbers and text") from None


def _encoded(metrics: MetricColumns | None, events: Sequence[Event],
             logs: Sequence[LogLine]) -> bytes:
    return orjson.dumps({
        "metrics": None if metrics is None else codec.columns_to_dict(*metrics),
        "events": [codec.event_to_dict(e) for e in events],
        "logs": [codec.logline_to_dict(line) for line in logs]},
        option=orjson.OPT_SERIALIZE_NUMPY)


def checked_columns(columns: MetricColumns) -> tuple[list[Any], ...]:
    """Metric columns checked value by value as a store checks them (ValidationError)."""
    from runyard.model import validate

    names, values, steps, times = columns
    return ([validate.metric_name(n) for n in names],
            [validate.metric_value(n, v) for n, v in zip(names, values, strict=True)],
            [validate.metric_step(n, s) for n, s in zip(names, steps, strict=True)],
            [validate.metric_time(n, t) for n, t in zip(names, times, strict=True)])


def columns_of(metrics: Sequence[Metric]) -> tuple[list[Any], ...]:
    return ([m[0] for m in metrics], [m[1] for m in metrics], [m[2] for m in metrics],
            [m[3] for m in metrics])


def fields_doc(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``update_run``'s fields as JSON: the owner as its dict, the kind as its name."""
    doc = dict(fields)
    if doc.get("owner") is not None and not isinstance(doc["owner"], dict):
        doc["owner"] = codec.owner_to_dict(doc["owner"])
    if doc.get("kind") is not None and not isinstance(doc["kind"], str):
        doc["kind"] = doc["kind"].value
    return doc


def filter_params(filter: RunFilter | None) -> list[tuple[str, Any]]:
    """A ``RunFilter`` as the query of ``GET /runs`` (repeated ``status`` and ``tag``)."""
    if filter is None:
        return []
    query: list[tuple[str, Any]] = [("status", s) for s in sorted(s.value for s in filter.status)]
    query += [("tag", t) for t in sorted(filter.tags)]
    query += [("folder", filter.folder), ("name", filter.name),
              ("kind", None if filter.kind is None else filter.kind.value),
              ("created_since", filter.created_since), ("created_until", filter.created_until)]
    return query

