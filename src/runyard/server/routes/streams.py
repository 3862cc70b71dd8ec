"""A run's metrics, events and log lines over HTTP: appends, reads, followers' slices and M4.

Appends take orjson-parsed bodies decoded by ``runyard.model.codec`` (see
``runyard.server.wire``); ``POST …/batch`` is what the http store sends every append through,
exactly once per ``Idempotency-Key`` (``append_batch``), so a client may resend after any
failure. Reads answer the codec's dicts. ``…/metrics/downsample`` cuts one series to at most
four points per bucket (``runyard.core.downsample.m4``), so a chart of a million points costs
a few thousand. Store calls block, so they run in the threadpool, never on the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from runyard.errors import ValidationError
from runyard.model import codec
from runyard.model.validate import MAX_STEP, MIN_STEP
from runyard.server import wire
from runyard.server.answers import OrjsonAnswer
from runyard.stores.streams import MetricColumns, check_batch_key

if TYPE_CHECKING:
    from runyard.stores.base import RunStore
    from runyard.stores.streams import MetricSeries

router = APIRouter(tags=["streams"])

Kind = Literal["metrics", "events", "logs"]
KeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=128,
    description="1-128 of [A-Za-z0-9._:-]; a batch resent with the same key is not applied "
                "again (required on /batch)")]
Step = Annotated[int | None, Query(ge=MIN_STEP, le=MAX_STEP)]
Time = Annotated[float | None, Query(allow_inf_nan=False)]
Low = Annotated[float | None, Query(alias="min", allow_inf_nan=False,
                                    description="the x range's low end")]
High = Annotated[float | None, Query(alias="max", allow_inf_nan=False,
                                     description="the x range's high end")]
Tail = Annotated[int | None, Query(ge=0, le=10_000_000)]
NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "Appended."}}
MAX_POSITION = 2**62  # no stream holds this many rows
BATCH_FIELDS = frozenset({"metrics", "events", "logs"})


class Applied(BaseModel):
    applied: bool


class Appended(BaseModel):
    appended: int


def store_of(request: Request) -> RunStore:
    store: RunStore = request.app.state.context.store
    return store


@router.post("/runs/{run_id}/batch", response_model=Applied, openapi_extra=wire.body_schema(
    wire.BATCH), summary="Append metrics, events and log lines at once, exactly once per key")
async def post_batch(run_id: str, request: Request, key: KeyHeader = None) -> Applied:
    if key is None:
        raise ValidationError("POST /batch needs an Idempotency-Key header (1-128 of "
                              "[A-Za-z0-9._:-]) that names the batch across resends")
    check_batch_key(key)
    data = await wire.read_object(request, BATCH_FIELDS)
    applied = await run_in_threadpool(append_batch, store_of(request), run_id, key, data)
    return Applied(applied=applied)


def append_batch(store: RunStore, run_id: str, key: str, data: dict[str, Any]) -> bool:
    given = data.get("metrics")
    metrics = None if given is None else MetricColumns(*codec.columns_from_dict(given))
    return store.append_batch(run_id, key, metrics=metrics,
                              events=codec.events_from_list(data.get("events", [])),
                              logs=codec.loglines_from_list(data.get("logs", [])))


@router.post("/runs/{run_id}/metrics", status_code=204, responses=NO_CONTENT,
             openapi_extra=wire.body_schema(wire.COLUMNS), summary="Append metric columns")
async def post_metrics(run_id: str, request: Request, key: KeyHeader = None) -> Response:
    data = await wire.read_object(request, frozenset(wire.COLUMNS["properties"]))
    if key is not None:
        await run_in_threadpool(append_batch, store_of(request), run_id, check_batch_key(key),
                                {"metrics": data})
    else:
        await run_in_threadpool(append_columns, store_of(request), run_id, data)
    return Response(status_code=204)


def append_columns(store: RunStore, run_id: str, data: dict[str, Any]) -> None:
    store.append_metric_columns(run_id, *codec.columns_from_dict(data))


@router.get("/runs/{run_id}/metrics", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.COLUMNS)},
            summary="A run's metrics as columns; one metric's within step and time ranges")
def get_metrics(request: Request, run_id: str, name: str | None = None,
                step_min: Step = None, step_max: Step = None,
                time_min: Time = None, time_max: Time = None) -> OrjsonAnswer:
    steps, times = (step_min, step_max), (time_min, time_max)
    if name is None:
        if any(b is not None for b in (*steps, *times)):
            raise ValidationError("step_min, step_max, time_min and time_max need a metric "
                                  "name: add name=…")
        return OrjsonAnswer(codec.metrics_to_columns(store_of(request).read_metrics(run_id)))
    series = store_of(request).read_metric_series(
        run_id, name, steps=None if steps == (None, None) else steps,
        times=None if times == (None, None) else times)
    return OrjsonAnswer(series_columns(name, series))


def series_columns(name: str, series: MetricSeries) -> dict[str, Any]:
    """One metric's series as the wire's columns (steps logged as None come back None)."""
    steps: list[int | None] = list(series.steps.tolist())
    for at in series.no_step:
        steps[at] = None
    return codec.columns_to_dict([name] * len(steps), series.values.tolist(), steps,
                                 series.times.tolist())


@router.get("/runs/{run_id}/metrics/summary", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.obj(["metrics"],
                                                         metrics=wire.array(wire.SUMMARY)))},
            summary="Per metric name: count, last value and step, minimum and maximum")
def get_summary(request: Request, run_id: str) -> OrjsonAnswer:
    found = store_of(request).metric_summaries(run_id)
    return OrjsonAnswer({"metrics": [{
        "name": s.name, "count": s.count, "last": codec.encode_number(s.last),
        "last_step": s.last_step, "minimum": codec.encode_number(s.minimum),
        "maximum": codec.encode_number(s.maximum)} for s in found]})


@router.get("/runs/{run_id}/metrics/downsample", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.DOWNSAMPLED)},
            summary="One metric cut to first, min, max and last per x bucket (M4)")
def get_downsample(request: Request, run_id: str, name: str,
                   buckets: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                   x: Literal["step", "time"] = "step",
                   low: Low = None, high: High = None) -> OrjsonAnswer:
    series = store_of(request).read_metric_series(run_id, name, **x_bounds(x, low, high))
    xs, ys, total = cut(series, x, buckets, low, high)
    return OrjsonAnswer({"name": name, "x": x, "buckets": buckets, "count": total,
                           "points": {"x": xs, "y": codec.encode_numbers(ys)}})


def x_bounds(x: str, low: float | None, high: float | None) -> dict[str, Any]:
    """The store's read bounds for an x range (whole steps within it)."""
    if low is None and high is None:
        return {}
    if x == "time":
        return {"times": (low, high)}
    return {"steps": (None if low is None else _step(math.ceil(low)),
                      None if high is None else _step(math.floor(high)))}


def _step(value: int) -> int:
    return min(max(value, MIN_STEP), MAX_STEP)


def cut(series: MetricSeries, x: str, buckets: int, low: float | None, high: float | None
        ) -> tuple[list[Any], list[float], int]:
    """The M4 points of ``series`` over steps or times, as lists, and the count in range."""
    import numpy as np

    from runyard.core.downsample import m4

    ys = np.frombuffer(series.values, dtype=np.float64) if len(series.values) else np.zeros(0)
    if x == "time":
        xs = np.frombuffer(series.times, dtype=np.float64) if len(ys) else np.zeros(0)
    else:
        xs = np.frombuffer(series.steps, dtype=np.int64) if len(ys) else np.zeros(0, np.int64)
        if len(series.no_step):
            keep = np.ones(len(xs), dtype=bool)
            keep[np.asarray(series.no_step, dtype=np.int64)] = False
            xs, ys = xs[keep], ys[keep]
    found = m4(xs, ys, buckets, low, high)
    return found.x.tolist(), found.y.tolist(), found.total


@router.post("/runs/{run_id}/events", status_code=204, responses=NO_CONTENT,
             openapi_extra=wire.body_schema(wire.obj(["events"],
                                                     events=wire.array(wire.EVENT))),
             summary="Append events")
async def post_events(run_id: str, request: Request) -> Response:
    data = await wire.read_object(request, frozenset({"events"}))
    events = codec.events_from_list(data.get("events"))
    await run_in_threadpool(store_of(request).append_events, run_id, events)
    return Response(status_code=204)


@router.get("/runs/{run_id}/events", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.obj(["events"],
                                                         events=wire.array(wire.EVENT)))},
            summary="A run's events, from a time on, the last few")
def get_events(request: Request, run_id: str, since: Time = None,
               tail: Tail = None) -> OrjsonAnswer:
    found = store_of(request).read_events(run_id, since=since, tail=tail)
    return OrjsonAnswer({"events": [codec.event_to_dict(e) for e in found]})


@router.post("/runs/{run_id}/logs", status_code=204, responses=NO_CONTENT,
             openapi_extra=wire.body_schema(wire.obj(["lines"],
                                                     lines=wire.array(wire.LOGLINE))),
             summary="Append log lines")
async def post_logs(run_id: str, request: Request) -> Response:
    data = await wire.read_object(request, frozenset({"lines"}))
    lines = codec.loglines_from_list(data.get("lines"))
    await run_in_threadpool(store_of(request).append_logs, run_id, lines)
    return Response(status_code=204)


@router.get("/runs/{run_id}/logs", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.obj(["lines"],
                                                         lines=wire.array(wire.LOGLINE)))},
            summary="A run's log lines (of one step), from a time on, the last few")
def get_logs(request: Request, run_id: str, step: str | None = None, since: Time = None,
             tail: Tail = None) -> OrjsonAnswer:
    found = store_of(request).read_logs(run_id, step=step, since=since, tail=tail)
    return OrjsonAnswer({"lines": [codec.logline_to_dict(line) for line in found]})


ENCODE: dict[str, Callable[[Any], Any]] = {
    "metrics": codec.metric_to_dict, "events": codec.event_to_dict,
    "logs": codec.logline_to_dict}
DECODE: dict[str, Callable[[Any], Any]] = {
    "metrics": codec.metric_from_dict, "events": codec.event_from_dict,
    "logs": codec.logline_from_dict}


@router.post("/runs/{run_id}/streams/{kind}/missing", response_model=Appended,
             openapi_extra=wire.body_schema(wire.obj(
                 ["start", "items"], start={"type": "integer", "minimum": 0},
                 items=wire.array(wire.ITEM))),
             summary="Append the rows of a stream from position start that the run lacks")
async def post_missing(run_id: str, kind: Kind, request: Request) -> Appended:
    data = await wire.read_object(request, frozenset({"start", "items"}))
    start = wire.whole(data, "start")
    if not isinstance(data.get("items"), list):
        raise ValidationError("items must be a JSON array of the stream's rows")
    items = [DECODE[kind](item) for item in data["items"]]
    count = await run_in_threadpool(store_of(request).append_missing, run_id, kind, items, start)
    return Appended(appended=count)


@router.get("/runs/{run_id}/streams/{kind}", response_class=OrjsonAnswer,
            responses={200: wire.answer_schema(wire.obj(
                ["items", "next"], items=wire.array(wire.ITEM), next={"type": "integer"}))},
            summary="The rows of a stream from position start on (for followers and copies)")
def get_stream(request: Request, run_id: str, kind: Kind,
               start: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int | None, Query(ge=0)] = None) -> OrjsonAnswer:
    """Positions past the end, however large, read nothing (``next`` then stays at most
    2**62, which JSON's 64-bit integers carry)."""
    start = min(start, MAX_POSITION)
    rows = store_of(request).read_from(run_id, kind, start,
                                       None if limit is None else min(limit, MAX_POSITION))
    return OrjsonAnswer({"items": [ENCODE[kind](row) for row in rows],
                           "next": start + len(rows)})
