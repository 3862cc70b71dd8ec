"""The ``runs/…`` and ``metrics/…`` endpoints: create, get, update, delete and restore runs,
log to them, search them, and read metric histories (whole, paged, or sampled for plots)."""

from __future__ import annotations

from typing import Any

from runyard.model import RunRecord
from runyard.server.mlflow import experiments, logbatch, runs, runsearch, search, wire
from runyard.server.mlflow.errors import invalid
from runyard.server.mlflow.logbatch import key_of
from runyard.stores import RunStore

MAX_HISTORY = 1_000_000
MAX_BULK_RUNS, MAX_BULK_POINTS = 100, 2500


def the_run(store: RunStore, fields: dict[str, Any]) -> RunRecord:
    """The run named by ``run_id`` (or the older ``run_uuid``)."""
    run_id = wire.text(fields, "run_id") or wire.text(fields, "run_uuid")
    if not run_id:
        raise invalid("missing value for required parameter 'run_id'")
    return runs.get_run(store, run_id)


def create(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    experiment = experiments.get(store, wire.text(fields, "experiment_id") or "0")
    tags = logbatch.new_tags(wire.items(fields, "tags"))
    run = runs.create(store, experiment, wire.text(fields, "run_name", limit=500),
                      wire.whole(fields, "start_time"), tags,
                      wire.text(fields, "user_id", limit=500))
    return {"run": runs.run_doc(store, run, experiment.id, [])}


def get(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    return {"run": runs.run_doc(store, the_run(store, fields))}


def update(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    run = the_run(store, fields)
    status = runs.check_status(wire.text(fields, "status"))
    name = wire.text(fields, "run_name", limit=500)
    run = runs.update(store, run, status, wire.whole(fields, "end_time"), name)
    return {"run_info": runs.info(run, experiments.by_folder(store, run.folder).id)}


def delete(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    runs.set_lifecycle(store, the_run(store, fields), runs.DELETED)
    return {}


def restore(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    runs.set_lifecycle(store, the_run(store, fields), runs.ACTIVE)
    return {}


def log_metric(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    logbatch.log_batch(store, the_run(store, fields), [fields], [], [])
    return {}


def log_param(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    logbatch.log_batch(store, the_run(store, fields), [], [fields], [])
    return {}


def set_tag(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    logbatch.log_batch(store, the_run(store, fields), [], [], [fields])
    return {}


def delete_tag(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    run = the_run(store, fields)
    logbatch.delete_tag(store, run, key_of(fields, "tag"))
    return {}


def log_batch(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    metrics, params = wire.items(fields, "metrics"), wire.items(fields, "params")
    tags = wire.items(fields, "tags")
    logbatch.check_sizes(len(metrics), len(params), len(tags))
    logbatch.log_batch(store, the_run(store, fields), metrics, params, tags)
    return {}


def log_inputs(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    """Datasets are not kept: the run is checked and the call answered, so ``log_input``
    works."""
    runs.active(the_run(store, fields))
    return {}


def search_runs(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    return runsearch.search_runs(store, fields)


def metric_doc(key: str, value: float, time: float, step: int | None) -> dict[str, Any]:
    return {"key": key, "value": wire.double(value), "timestamp": round(time * 1000),
            "step": step or 0}


def history(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    run = the_run(store, fields)
    key = wire.text(fields, "metric_key", required=True) or ""
    limit = wire.whole(fields, "max_results", default=MAX_HISTORY, low=1,
                       high=MAX_HISTORY) or MAX_HISTORY
    offset = search.offset_of(wire.text(fields, "page_token"))
    series = store.read_metric_series(run.id, key)
    steps = series.step_list()
    end = min(len(steps), offset + limit)
    found = [metric_doc(key, series.values[i], series.times[i], steps[i])
             for i in range(offset, end)]
    answer: dict[str, Any] = {"metrics": found}
    if end < len(steps):
        answer["next_page_token"] = search.page_token(end)
    return answer


def sampled(steps: list[int], most: int) -> set[int]:
    """At most ``most`` of the sorted distinct ``steps``: a uniform stride, first and last
    kept (as MLflow samples them for plots)."""
    if len(steps) <= most:
        return set(steps)
    if most == 1:
        return {steps[0]}
    stride = (len(steps) - 1) / (most - 1)
    return {steps[round(i * stride)] for i in range(most)}


def bulk_interval(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    ids = wire.texts(fields, "run_ids")
    if not ids or len(ids) > MAX_BULK_RUNS:
        raise invalid(f"GetMetricHistoryBulkInterval request must specify between 1 and "
                      f"{MAX_BULK_RUNS} run_ids. Received {len(ids)} run_ids.")
    key = wire.text(fields, "metric_key", required=True) or ""
    most = wire.whole(fields, "max_results", default=MAX_BULK_POINTS, low=1,
                      high=MAX_BULK_POINTS) or MAX_BULK_POINTS
    start, end = wire.whole(fields, "start_step"), wire.whole(fields, "end_step")
    if (start is None) != (end is None):
        raise invalid("If either start step or end step are specified, both must be "
                      "specified.")
    if start is not None and end is not None and start > end:
        raise invalid(f"end_step must be greater than start_step. Found start_step={start} "
                      f"and end_step={end}.")
    bounds = None if start is None else (start, end)
    series = {rid: store.read_metric_series(runs.get_run(store, rid).id, key, steps=bounds)
              for rid in ids}
    every_step = sorted({s for one in series.values() for s in one.steps})
    chosen = sampled(every_step, most)
    found = []
    for rid, one in series.items():
        picked = [(one.steps[i], one.times[i], one.values[i]) for i in range(len(one.values))
                  if one.steps[i] in chosen]
        found += [{**metric_doc(key, v, t, s), "run_id": rid} for s, t, v in sorted(picked)]
    return {"metrics": found}


def logged_models_search(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    """runyard keeps no logged models: none are found (``list_artifacts(run, "sub")`` asks)."""
    return {}


TABLE = [
    ("POST", "runs/create", create),
    ("GET", "runs/get", get),
    ("POST", "runs/update", update),
    ("POST", "runs/delete", delete),
    ("POST", "runs/restore", restore),
    ("POST", "runs/search", search_runs),
    ("GET", "runs/search", search_runs),
    ("POST", "runs/log-metric", log_metric),
    ("POST", "runs/log-parameter", log_param),
    ("POST", "runs/set-tag", set_tag),
    ("POST", "runs/delete-tag", delete_tag),
    ("POST", "runs/log-batch", log_batch),
    ("POST", "runs/log-inputs", log_inputs),
    ("GET", "metrics/get-history", history),
    ("GET", "metrics/get-history-bulk-interval", bulk_interval),
    ("POST", "logged-models/search", logged_models_search),
]
