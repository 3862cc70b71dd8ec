"""Plain-dict (JSON-ready) forms of the records, and back. Round trips are identities."""

from __future__ import annotations

from typing import Any

from runyard.model.records import Artifact, Attempt, Kind, Owner, RunRecord, Stage, Step
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
