"""A whole run log held as one document: used by the memory and file-system stores.

The operations here are the store semantics for a single run; the backends add locking and
persistence around them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import ConflictError, StepNotFound
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    LogLine,
    Metric,
    RunRecord,
    Status,
    Step,
    artifact_from_dict,
    artifact_to_dict,
    run_from_dict,
    run_to_dict,
    step_from_dict,
    step_to_dict,
)
from runyard.model import validate as check
from runyard.stores.base import check_fields


@dataclass
class RunDoc:
    run: RunRecord
    steps: dict[str, Step] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    artifacts: dict[tuple[str, str], Artifact] = field(default_factory=dict)

    # -- run fields -------------------------------------------------------------------------
    def set_status(
        self, status: Status, reason: str | None, expect: Status | None, now: float | None,
        metadata: Mapping[str, Any] | None = None, internals: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        changes = updatable(fields) if fields else None
        run = apply_status(self.run, status, reason, expect, now)
        if changes:
            run = run.replace(**changes)
        if metadata:
            run = run.replace(metadata={**run.metadata, **metadata})
        if internals:
            run = run.replace(internals={**run.internals, **internals})
        self.run = run
        return self.run

    def update(self, fields: Mapping[str, Any]) -> RunRecord:
        self.run = self.run.replace(**updatable(fields))
        return self.run

    def add_tags(self, tags: Iterable[str]) -> RunRecord:
        self.run = self.run.replace(tags=self.run.tags | {check.tag(t) for t in tags})
        return self.run

    def remove_tags(self, tags: Iterable[str]) -> RunRecord:
        self.run = self.run.replace(tags=self.run.tags - set(tags))
        return self.run

    def merge_metadata(self, data: Mapping[str, Any]) -> RunRecord:
        self.run = self.run.replace(metadata={**self.run.metadata, **data})
        return self.run

    def set_parameters(self, params: Mapping[str, Any]) -> RunRecord:
        self.run = self.run.replace(parameters={**self.run.parameters, **params})
        return self.run

    # -- steps ------------------------------------------------------------------------------
    def upsert_step(self, step: Step) -> Step:
        check.step_name(step.name)
        self.steps[step.name] = step
        return step

    def upsert_attempt(self, step_name: str, attempt: Attempt) -> Step:
        step = self.step(step_name).with_attempt(attempt)
        self.steps[step_name] = step
        return step

    def step(self, name: str) -> Step:
        try:
            return self.steps[name]
        except KeyError:
            raise StepNotFound(self.run.id, name) from None

    def ordered_steps(self) -> list[Step]:
        return sorted(self.steps.values(), key=lambda s: (s.created, s.name))

    def add_artifact(self, artifact: Artifact) -> None:
        check.artifact_name(artifact.name)
        self.artifacts[(artifact.name, artifact.stage.value)] = artifact

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "run": run_to_dict(self.run),
            "steps": [step_to_dict(s) for s in self.ordered_steps()],
            "metrics": [list(m) for m in self.metrics],
            "events": [list(e) for e in self.events],
            "logs": [list(line) for line in self.logs],
            "artifacts": [artifact_to_dict(a) for a in self.artifacts.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunDoc:
        artifacts = [artifact_from_dict(a) for a in data.get("artifacts", ())]
        return cls(
            run=run_from_dict(data["run"]),
            steps={s["name"]: step_from_dict(s) for s in data.get("steps", ())},
            metrics=[Metric(*m) for m in data.get("metrics", ())],
            events=[Event(*e) for e in data.get("events", ())],
            logs=[LogLine(*line) for line in data.get("logs", ())],
            artifacts={(a.name, a.stage.value): a for a in artifacts},
        )


def updatable(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """``update_run`` fields, checked (only ``UPDATABLE`` ones; a folder well formed)."""
    check_fields(fields)
    if "folder" in fields:
        return {**fields, "folder": check.folder(fields["folder"])}
    return fields


def apply_status(
    run: RunRecord, status: Status, reason: str | None, expect: Status | None, now: float | None
) -> RunRecord:
    """The checked transition shared by every backend (``expect`` is a compare-and-set)."""
    status = Status.parse(status)
    if expect is not None and run.status is not expect:
        raise ConflictError(
            f"run {run.id} is {run.status.value}, not {Status.parse(expect).value}; "
            "it was changed by someone else"
        )
    return run.with_status(status, reason, now)


def checked_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """Validate a batch (names, values, steps, times) before any of it is written; values
    become floats, steps ints that fit an int64 or ``None``, times finite floats.

    Lean, since every logged value passes here: each distinct name is checked once, and a
    ``Metric`` of a float value, an int step and a finite float time is kept as it is.
    """
    out: list[Metric] = []
    add = out.append
    names: set[str] = set()
    low, top = check.MIN_STEP, check.MAX_STEP
    for m in metrics:
        name, value, step, time = m
        if name.__class__ is not str or name not in names:
            names.add(check.metric_name(name))
        plain = m.__class__ is Metric and value.__class__ is float
        if step is not None and (step.__class__ is not int or not low <= step <= top):
            step, plain = check.metric_step(name, step), False
        if time.__class__ is not float or time - time != 0.0:  # not a finite float
            time, plain = check.metric_time(name, time), False
        if plain:
            add(m)
        else:
            add(_new_tuple(Metric, (name, check.metric_value(name, value), step, time)))
    return out


_new_tuple = tuple.__new__
