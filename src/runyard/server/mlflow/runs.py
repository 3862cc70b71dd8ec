"""MLflow runs as runyard tracked runs: what each field is, and the checked changes.

    MLflow                    runyard
    run_id / run_uuid         the run's id
    experiment_id             the experiment whose folder is the run's folder
    run_name                  metadata ``mlflow.runName`` (else the run's name); the run's own
                              name is that name when it is a free runyard name, else one made
                              from it (runyard names are unique, MLflow's are not)
    tags                      the run's metadata (a non-text value as JSON; a key set to None
                              is a deleted tag), and each runyard tag as a tag with value ""
    params                    parameters (immutable: a second value is refused)
    metrics                   metrics, with step and time (ms ↔ s); the latest is the last
                              appended
    status                    RUNNING ↔ running (canceling), SCHEDULED ↔ created/pending,
                              FINISHED ↔ succeeded, FAILED ↔ failed/lost, KILLED ↔ canceled;
                              changed through the model's checked transitions
    start_time / end_time     started / ended
    lifecycle_stage           internals ``mlflow.lifecycle`` (soft delete; restore undoes it)
    artifact_uri              ``mlflow-artifacts:/<experiment>/<run>/artifacts``: the run's
                              catalog (artifact path = catalog name)
"""

from __future__ import annotations

import json
import re
import time
from contextlib import suppress
from typing import Any

from runyard.errors import IllegalTransition, NameTaken, ValidationError
from runyard.model import Kind, RunRecord, Status, new_id
from runyard.model.status import status_path
from runyard.server.mlflow import experiments
from runyard.server.mlflow.errors import BAD_STATE, MlflowError, invalid, missing
from runyard.server.mlflow.wire import double, millis
from runyard.stores import RunStore

RUN_NAME, USER = "mlflow.runName", "mlflow.user"
ACTIVE, DELETED = "active", "deleted"
TO_MLFLOW = {Status.CREATED: "SCHEDULED", Status.PENDING: "SCHEDULED",
             Status.RUNNING: "RUNNING", Status.CANCELING: "RUNNING",
             Status.SUCCEEDED: "FINISHED", Status.FAILED: "FAILED", Status.LOST: "FAILED",
             Status.CANCELED: "KILLED"}
FROM_MLFLOW = {"RUNNING": Status.RUNNING, "SCHEDULED": Status.PENDING,
               "FINISHED": Status.SUCCEEDED, "FAILED": Status.FAILED,
               "KILLED": Status.CANCELED}
_NAME_BAD = re.compile(r"[^A-Za-z0-9._\-]+")


def get_run(store: RunStore, run_id: str) -> RunRecord:
    """The run, or MLflow's ``RESOURCE_DOES_NOT_EXIST``."""
    from runyard.model import looks_like_id

    if not looks_like_id(run_id):
        raise missing(f"Run with id={run_id} not found")
    return store.get_run(run_id)


def lifecycle(run: RunRecord) -> str:
    mine = run.internals.get("mlflow")
    return str(mine.get("lifecycle", ACTIVE)) if isinstance(mine, dict) else ACTIVE


def active(run: RunRecord) -> RunRecord:
    """``run`` if it may be written to (MLflow refuses a deleted run)."""
    if lifecycle(run) != ACTIVE:
        raise MlflowError(f"The run {run.id} must be in the 'active' state. Current state is "
                          f"{lifecycle(run)}.", BAD_STATE)
    return run


def run_name(run: RunRecord) -> str:
    value = run.metadata.get(RUN_NAME)
    return value if isinstance(value, str) else run.name


def tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def tags(run: RunRecord) -> dict[str, str]:
    """The run's MLflow tags: its metadata, and its runyard tags (value "")."""
    found = {t: "" for t in run.tags}
    found.update((k, tag_value(v)) for k, v in run.metadata.items() if v is not None)
    return found


def params(run: RunRecord) -> dict[str, str]:
    return {k: tag_value(v) for k, v in run.parameters.items()}


def artifact_uri(experiment_id: str, run_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def info(run: RunRecord, experiment_id: str) -> dict[str, Any]:
    user = run.metadata.get(USER)
    return {"run_id": run.id, "run_uuid": run.id, "run_name": run_name(run),
            "experiment_id": experiment_id, "user_id": user if isinstance(user, str) else "",
            "status": TO_MLFLOW[run.status], "start_time": millis(run.started or run.created),
            "end_time": millis(run.ended), "artifact_uri": artifact_uri(experiment_id, run.id),
            "lifecycle_stage": lifecycle(run)}


def latest_metrics(store: RunStore, run: RunRecord) -> list[dict[str, Any]]:
    """The last value of each metric (its time: the run's latest known moment)."""
    moment = millis(run.ended or run.heartbeat or run.started or run.created)
    return [{"key": s.name, "value": double(s.last), "timestamp": moment,
             "step": s.last_step or 0} for s in store.metric_summaries(run.id)]


def run_doc(store: RunStore, run: RunRecord, experiment_id: str | None = None,
            metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole MLflow ``Run``: info, and data (metrics, params, tags)."""
    if experiment_id is None:
        experiment_id = experiments.by_folder(store, run.folder).id
    data = {"metrics": latest_metrics(store, run) if metrics is None else metrics,
            "params": [{"key": k, "value": v} for k, v in params(run).items()],
            "tags": [{"key": k, "value": v} for k, v in tags(run).items()]}
    return {"info": info(run, experiment_id), "data": data, "inputs": {}}


def runyard_name(wanted: str) -> str:
    """A runyard run name made from an MLflow one (``lr=0.1 run`` → ``lr-0.1-run``)."""
    name = _NAME_BAD.sub("-", wanted).strip("-._")[:100]
    return name if name and name[0].isalnum() else f"run-{name}"[:100].rstrip("-._") or "run"


def create(store: RunStore, experiment: experiments.Experiment, name: str | None,
           start_ms: int | None, given: dict[str, str], user: str | None) -> RunRecord:
    """A new tracked run, running, in the experiment's folder."""
    if experiment.lifecycle != experiments.ACTIVE:
        raise MlflowError(f"The experiment {experiment.id} must be in the 'active' state. "
                          f"Current state is {experiment.lifecycle}.", BAD_STATE)
    from runyard.core.naming import generate_name

    wanted = name or given.get(RUN_NAME) or generate_name()
    metadata: dict[str, Any] = {**given, RUN_NAME: wanted}
    if user and USER not in metadata:
        metadata[USER] = user
    started = time.time() if start_ms is None else start_ms / 1000.0
    run_id = new_id()
    base = runyard_name(wanted)
    for candidate in (base, f"{base[:80]}-{run_id[-8:].lower()}", run_id.lower()):
        run = RunRecord(id=run_id, name=candidate, folder=experiment.folder, kind=Kind.TRACKED,
                        status=Status.RUNNING, metadata=metadata, created=started,
                        started=started, heartbeat=None)
        try:
            return store.create_run(run)
        except NameTaken:
            continue
    raise invalid(f"no free runyard name for run {wanted!r}; give another run_name")


def update(store: RunStore, run: RunRecord, status: str | None, end_ms: int | None,
           name: str | None) -> RunRecord:
    """Change status (through the checked transitions), end time and name."""
    changes = {RUN_NAME: name} if name else None
    if status is not None and FROM_MLFLOW[status] is not run.status \
            and TO_MLFLOW[run.status] != status:
        run = _move(store, run, FROM_MLFLOW[status], end_ms, changes)
    elif changes:
        run = store.merge_metadata(run.id, changes)
    if name:
        _rename(store, run, name)
    return run


def _move(store: RunStore, run: RunRecord, target: Status, end_ms: int | None,
          changes: dict[str, Any] | None) -> RunRecord:
    path = status_path(run.status, target)
    if not path:
        raise MlflowError(f"run {run.id} is {TO_MLFLOW[run.status]} ({run.status.value}) and "
                          f"cannot become {TO_MLFLOW.get(target, target.value)}: runyard "
                          "never restarts an ended run; start a new run", BAD_STATE)
    try:
        for step in path:
            now = end_ms / 1000.0 if step.is_final and end_ms is not None else None
            run = store.update_status(run.id, step, expect=run.status, now=now,
                                      metadata=changes if step is target else None)
    except IllegalTransition as exc:
        raise MlflowError(str(exc), BAD_STATE) from None
    return run


def _rename(store: RunStore, run: RunRecord, name: str) -> None:
    """Give the runyard run the new name too, when it is free (best effort)."""
    candidate = runyard_name(name)
    if candidate == run.name:
        return
    with suppress(NameTaken, ValidationError):
        store.rename_run(run.id, candidate)


def set_lifecycle(store: RunStore, run: RunRecord, stage: str, *,
                  with_experiment: bool = False) -> RunRecord:
    """Soft delete (``deleted``) or restore (``active``): kept in the run's internals
    (``with_experiment``: deleted with its experiment, and restored with it)."""
    mine = dict(run.internals.get("mlflow") or {})
    mine.update(lifecycle=stage, changed=time.time(), with_experiment=with_experiment)
    return store.update_run(run.id, internals={**run.internals, "mlflow": mine})


def check_status(value: str | None) -> str | None:
    if value is not None and value not in FROM_MLFLOW:
        raise invalid(f"Invalid value {value!r} for parameter 'status': use one of "
                      f"{', '.join(FROM_MLFLOW)}")
    return value



