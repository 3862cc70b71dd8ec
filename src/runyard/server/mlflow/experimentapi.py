"""The ``experiments/…`` endpoints: get by name or id, create, search, delete, restore,
rename and tags (see ``experiments`` for where they are kept)."""

from __future__ import annotations

from typing import Any

from runyard.model import RunRecord
from runyard.server.mlflow import experiments, search, wire
from runyard.server.mlflow.errors import EXISTS, MlflowError, invalid, missing
from runyard.server.mlflow.experiments import ACTIVE, DELETED, Experiment
from runyard.server.mlflow.logbatch import MAX_TAG_VALUE, key_of, new_tags, value_of
from runyard.server.mlflow.runs import lifecycle, set_lifecycle
from runyard.server.mlflow.wire import millis
from runyard.stores import RunFilter, RunStore

VIEWS = {"ACTIVE_ONLY": (ACTIVE,), "DELETED_ONLY": (DELETED,), "ALL": (ACTIVE, DELETED)}
NUMBERS = frozenset({"creation_time", "last_update_time"})
TEXTS = frozenset({"name", "experiment_id", "lifecycle_stage"})


def doc(experiment: Experiment) -> dict[str, Any]:
    return {"experiment_id": experiment.id, "name": experiment.name,
            "artifact_location": f"mlflow-artifacts:/{experiment.id}",
            "lifecycle_stage": experiment.lifecycle,
            "creation_time": millis(experiment.created),
            "last_update_time": millis(experiment.updated),
            "tags": [{"key": k, "value": v} for k, v in experiment.tags.items()]}


def the(store: RunStore, fields: dict[str, Any]) -> Experiment:
    return experiments.get(store, wire.text(fields, "experiment_id", required=True) or "")


def get_by_name(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    name = wire.text(fields, "experiment_name", required=True) or ""
    found = experiments.by_name(store, name)
    if found is None:
        raise missing(f"Could not find experiment with name '{name}'")
    return {"experiment": doc(found)}


def get(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": doc(the(store, fields))}


def create(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    name = wire.text(fields, "name", required=True) or ""
    tags = new_tags(wire.items(fields, "tags"))
    return {"experiment_id": experiments.create(store, name, tags).id}


def attribute(name: str) -> str:
    if name in NUMBERS:
        return "number"
    if name in TEXTS:
        return "text"
    raise invalid(f"Invalid attribute key '{name}' specified. Valid keys are "
                  f"{sorted(NUMBERS | TEXTS)}")


def view(experiment: Experiment) -> search.View:
    shown = doc(experiment)
    attrs = {k: shown[k] for k in ("experiment_id", "name", "lifecycle_stage",
                                   "creation_time", "last_update_time")}
    return search.View(attrs, {}, {}, dict(experiment.tags))


def search_experiments(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    clauses = search.parse(wire.text(fields, "filter"), attribute)
    order = search.order_keys(wire.texts(fields, "order_by"), attribute)
    view_type = wire.text(fields, "view_type", default="ACTIVE_ONLY") or "ACTIVE_ONLY"
    if view_type not in VIEWS:
        raise invalid(f"Invalid view_type '{view_type}': use one of {sorted(VIEWS)}")
    limit = wire.whole(fields, "max_results", default=1000, low=1, high=50_000) or 1000
    offset = search.offset_of(wire.text(fields, "page_token"))
    known = {e.id: e for e in experiments.every(store) if e.lifecycle in VIEWS[view_type]}
    views = [v for v in map(view, known.values()) if all(search.holds(c, v) for c in clauses)]
    views = search.ordered(views, [*order, ("attributes", "creation_time", True),
                                   ("attributes", "experiment_id", False)])
    page = views[offset:offset + limit]
    answer: dict[str, Any] = {"experiments": [doc(known[v.attributes["experiment_id"]])
                                              for v in page]}
    if offset + limit < len(views):
        answer["next_page_token"] = search.page_token(offset + limit)
    return answer


def runs_in(store: RunStore, folder: str) -> list[RunRecord]:
    return [r for r in store.list_runs(RunFilter(folder=folder)) if r.folder == folder]


def delete(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    experiment = the(store, fields)
    if experiment.id == experiments.DEFAULT_ID:
        raise invalid("Cannot delete the default experiment '0'. This is an internal "
                      "experiment.")
    experiments.change(store, experiment, lifecycle=DELETED)
    for run in runs_in(store, experiment.folder):  # (as MLflow does: its runs go with it)
        if lifecycle(run) == ACTIVE:
            set_lifecycle(store, run, DELETED, with_experiment=True)
    return {}


def restore(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    experiment = the(store, fields)
    if experiment.id != experiments.DEFAULT_ID:
        experiments.change(store, experiment, lifecycle=ACTIVE)
    for run in runs_in(store, experiment.folder):
        mine = run.internals.get("mlflow") or {}
        if lifecycle(run) == DELETED and mine.get("with_experiment"):
            set_lifecycle(store, run, ACTIVE)
    return {}


def update(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    """Rename: the experiment's folder follows its name, and its runs move with it."""
    experiment = the(store, fields)
    new_name = experiments.check_name(wire.text(fields, "new_name", required=True) or "")
    if new_name == experiment.name:
        return {}
    known = experiments.every(store)
    if any(e.name == new_name for e in known):
        raise MlflowError(f"Experiment(name={new_name}) already exists", EXISTS)
    folder = experiments.folder_of_name(new_name)
    folder = experiments.free_folder(known, folder) if folder else experiment.folder
    moved = experiments.change(store, experiment, name=new_name, folder=folder)
    for run in runs_in(store, experiment.folder) if folder != experiment.folder else []:
        store.update_run(run.id, folder=moved.folder)
    return {}


def set_tag(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    experiment = the(store, fields)
    key = key_of(fields, "tag")
    value = value_of(fields, key, "tag", MAX_TAG_VALUE)
    experiments.change(store, experiment, tags={**experiment.tags, key: value})
    return {}


def delete_tag(store: RunStore, fields: dict[str, Any]) -> dict[str, Any]:
    experiment = the(store, fields)
    key = key_of(fields, "tag")
    if key not in experiment.tags:
        raise missing(f"No tag with name: {key} in experiment with id {experiment.id}")
    experiments.change(store, experiment,
                       tags={k: v for k, v in experiment.tags.items() if k != key})
    return {}


TABLE = [
    ("GET", "experiments/get-by-name", get_by_name),
    ("GET", "experiments/get", get),
    ("POST", "experiments/create", create),
    ("POST", "experiments/search", search_experiments),
    ("GET", "experiments/search", search_experiments),
    ("POST", "experiments/delete", delete),
    ("POST", "experiments/restore", restore),
    ("POST", "experiments/update", update),
    ("POST", "experiments/set-experiment-tag", set_tag),
    ("POST", "experiments/delete-experiment-tag", delete_tag),
]
