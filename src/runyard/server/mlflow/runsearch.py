"""``runs/search``: the runs of some experiments that pass a filter, in order, a page at a time.

An experiment's runs are the runs in its folder (not below it: a sub-folder is another
experiment). Each run is seen as MLflow sees it (``runyard.server.mlflow.runs``); metrics are
read only when the filter or the order names one, and for the runs of the page answered.
"""

from __future__ import annotations

from typing import Any

from runyard.model import RunRecord
from runyard.server.mlflow import experiments, search
from runyard.server.mlflow.errors import MlflowError, invalid
from runyard.server.mlflow.runs import ACTIVE, DELETED, info, lifecycle, params, run_doc, tags
from runyard.stores import RunFilter, RunStore

NUMBERS = frozenset({"start_time", "end_time", "created", "Created"})
TEXTS = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri",
                   "lifecycle_stage", "experiment_id"})
VIEWS = {"ACTIVE_ONLY": (ACTIVE,), "DELETED_ONLY": (DELETED,), "ALL": (ACTIVE, DELETED)}
MAX_RESULTS = 50_000


def attribute(name: str) -> str:
    if name in NUMBERS:
        return "number"
    if name in TEXTS:
        return "text"
    raise invalid(f"Invalid attribute key '{name}' specified. Valid keys are "
                  f"{sorted(NUMBERS | TEXTS)}")


def runs_of(store: RunStore, folders: dict[str, str]) -> list[tuple[RunRecord, str]]:
    """``(run, experiment id)`` of every run in these folders (folder → experiment id)."""
    if "/" in folders:  # (the root holds every folder: one listing)
        listed = store.list_runs()
    else:  # (a folder's listing holds its sub-folders too: they are other experiments)
        listed = [run for folder in folders for run in store.list_runs(RunFilter(folder=folder))]
    found = {run.id: run for run in listed if run.folder in folders}
    return [(run, folders[run.folder]) for run in found.values()]


def view_of(store: RunStore, run: RunRecord, experiment_id: str, with_metrics: bool
            ) -> search.View:
    attrs: dict[str, Any] = info(run, experiment_id)
    attrs["created"] = attrs["Created"] = attrs["start_time"]
    metrics = {s.name: s.last for s in store.metric_summaries(run.id)} if with_metrics else {}
    return search.View(attrs, metrics, params(run), tags(run))


def search_runs(store: RunStore, body: dict[str, Any]) -> dict[str, Any]:
    from runyard.server.mlflow import wire

    ids = wire.texts(body, "experiment_ids")
    clauses = search.parse(wire.text(body, "filter"), attribute)
    order = search.order_keys(wire.texts(body, "order_by"), attribute)
    view_type = wire.text(body, "run_view_type", default="ACTIVE_ONLY") or "ACTIVE_ONLY"
    if view_type not in VIEWS:
        raise invalid(f"Invalid run_view_type '{view_type}': use one of {sorted(VIEWS)}")
    limit = wire.whole(body, "max_results", default=1000, low=1, high=MAX_RESULTS) or 1000
    offset = search.offset_of(wire.text(body, "page_token"))
    folders = {}
    for experiment_id in ids:
        try:
            folders[experiments.get(store, experiment_id).folder] = experiment_id
        except MlflowError:
            continue  # (MLflow finds no runs in an experiment that is not there)
    with_metrics = any(c.entity == "metrics" for c in clauses) or \
        any(entity == "metrics" for entity, _, _ in order)
    views, by_id = [], {}
    for run, experiment_id in runs_of(store, folders) if folders else []:
        if lifecycle(run) not in VIEWS[view_type]:
            continue
        by_id[run.id] = run
        view = view_of(store, run, experiment_id, with_metrics)
        if all(search.holds(c, view) for c in clauses):
            views.append(view)
    views = search.ordered(views, [*order, ("attributes", "start_time", True),
                                   ("attributes", "run_id", False)])
    page = views[offset:offset + limit]
    answer: dict[str, Any] = {"runs": [run_doc(store, by_id[v.attributes["run_id"]],
                                               v.attributes["experiment_id"]) for v in page]}
    if offset + limit < len(views):
        answer["next_page_token"] = search.page_token(offset + limit)
    return answer
