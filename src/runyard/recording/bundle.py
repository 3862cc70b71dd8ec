"""runyard's own file in an export (``runyard/bundle.json``): what an import restores exactly.

The RO-Crate describes the runs for any reader; this file holds them as runyard keeps them:
each run (the version first, then its recorded runs) with its steps, catalog, metrics, events
and log lines in the model's plain-dict forms, and ``files``: every other payload file of the
bag (the version's files, the runs' outputs, the manifest and other blobs) with the SHA-256 it
must hash to. Reading it back (``decode``) checks its shape and that it is one version with
its own recorded runs, so a hand-made bundle cannot smuggle in anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runyard.errors import IntegrityError, ValidationError
from runyard.model import (
    Artifact,
    Event,
    Kind,
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
from runyard.model.codec import (
    event_to_dict,
    events_from_list,
    logline_to_dict,
    loglines_from_list,
    metric_from_dict,
    metric_to_dict,
)

FORMAT = 1
PATH = "runyard/bundle.json"
MANIFEST_PATH = "runyard/manifest.json"
CRATE_PATH = "ro-crate-metadata.json"


@dataclass(frozen=True)
class RunLog:
    """One run with everything the store keeps about it."""

    run: RunRecord
    steps: list[Step] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)


@dataclass(frozen=True)
class Bundle:
    version: RunLog
    runs: list[RunLog]
    files: dict[str, str]  # payload path -> SHA-256

    def all_runs(self) -> list[RunLog]:
        return [self.version, *self.runs]


def read_log(store: Any, run: RunRecord) -> RunLog:
    """``run`` and its steps, catalog, metrics, events and log lines from ``store``."""
    return RunLog(run, store.get_steps(run.id), store.list_artifacts(run.id),
                  store.read_metrics(run.id), store.read_events(run.id),
                  store.read_logs(run.id))


def encode(bundle: Bundle) -> bytes:
    doc = {"format": FORMAT, "version": _log_to_dict(bundle.version),
           "runs": [_log_to_dict(r) for r in bundle.runs], "files": bundle.files}
    return json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")


def _log_to_dict(log: RunLog) -> dict[str, Any]:
    return {"run": run_to_dict(log.run), "steps": [step_to_dict(s) for s in log.steps],
            "artifacts": [artifact_to_dict(a) for a in log.artifacts],
            "metrics": [metric_to_dict(m) for m in log.metrics],
            "events": [event_to_dict(e) for e in log.events],
            "logs": [logline_to_dict(line) for line in log.logs]}


def decode(data: bytes, where: str) -> Bundle:
    """The bundle in ``data``; ``IntegrityError`` naming ``where`` if it is not a valid one."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a bundle of format 1")
        bundle = Bundle(_log_from_dict(doc["version"]),
                        [_log_from_dict(r) for r in doc["runs"]], _files(doc["files"]))
        _check(bundle)
    except (ValueError, TypeError, KeyError, AttributeError, ValidationError) as exc:
        raise IntegrityError(f"cannot import {where}: {PATH} is not a valid runyard bundle "
                             f"({exc}); it is damaged or was tampered with, and nothing was "
                             "imported") from None
    return bundle


def _log_from_dict(data: dict[str, Any]) -> RunLog:
    return RunLog(run_from_dict(data["run"]),
                  [step_from_dict(s) for s in data["steps"]],
                  [artifact_from_dict(a) for a in data["artifacts"]],
                  [metric_from_dict(m) for m in data["metrics"]],
                  events_from_list(data["events"]), loglines_from_list(data["logs"]))


def _files(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError("files is not an object")
    for path, digest in raw.items():
        check.artifact_name(path)
        if not _is_sha256(digest):
            raise ValueError(f"bad SHA-256 for {path[:80]!r}")
    return dict(raw)


def _check(bundle: Bundle) -> None:
    version = bundle.version.run
    if version.kind is not Kind.VERSION or version.status is not Status.SUCCEEDED:
        raise ValueError("its first run is not a complete version")
    if not _is_sha256(version.internals.get("manifest")):
        raise ValueError("the version has no manifest")
    ids = {version.id}
    for log in bundle.runs:
        run = log.run
        if run.kind is not Kind.RECORDED or run.internals.get("version") != version.id:
            raise ValueError(f"run {run.id} is not a recorded run of version {version.id}")
        if run.id in ids:
            raise ValueError(f"run {run.id} appears twice")
        ids.add(run.id)
    for log in bundle.all_runs():
        for artifact in log.artifacts:
            check.artifact_name(artifact.name)
            if not _is_sha256(artifact.hash):
                raise ValueError(f"artifact {artifact.name[:80]!r} has no SHA-256 digest")


def _is_sha256(digest: Any) -> bool:
    return (isinstance(digest, str) and len(digest) == 64
            and all(c in "0123456789abcdef" for c in digest))
