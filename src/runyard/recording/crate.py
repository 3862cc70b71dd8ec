"""The RO-Crate 1.1 metadata of an export: a Process Run Crate 0.5 of a version and its runs.

Why a crate: a reviewer's tools (and the RO-Crate validator) read it without runyard. The
root dataset conforms to the Process Run Crate profile; the version's files (``workspace/``)
and each run's outputs (``runs/<name>/``) are ``File`` data entities with their size and
SHA-256; each recorded run is a ``CreateAction`` whose ``instrument`` is its entrypoint (the
version's file it runs, typed ``File`` and ``SoftwareApplication``, else a
``SoftwareApplication`` named after the command), ``object`` the version's files, ``result``
its outputs, with start and end times, an agent, its status as a schema.org action status
(and the reason as ``error`` when it did not succeed), and its environment and resource usage
as ``PropertyValue`` lists under the workflow-run terms ``environment`` and ``resourceUsage``,
given in an inline context since schema.org has no such terms.

Built with the ``rocrate`` package (imported here, lazily, by ``exports``): it writes RO-Crate
1.3 unless asked for 1.1, which the profile needs.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from runyard.model import RunRecord, Status

PROFILE = "https://w3id.org/ro/wfrun/process/0.5"
NO_LICENSE = "#license-not-stated"
WFRUN = "https://w3id.org/ro/terms/workflow-run#"
TERMS = {"environment": WFRUN + "environment", "resourceUsage": WFRUN + "resourceUsage"}
SCHEMA = "http://schema.org/"
SECONDS, BYTES = "http://qudt.org/vocab/unit/SEC", "http://qudt.org/vocab/unit/BYTE"
UNITS = {"cpu_user": SECONDS, "cpu_system": SECONDS, "wall_time": SECONDS,
         "peak_memory": BYTES, "read_bytes": BYTES, "write_bytes": BYTES}


@dataclass(frozen=True)
class CrateFile:
    """A payload file of the crate: its path under the crate root, size and SHA-256."""

    path: str
    size: int
    sha256: str
    about: str | None = None  # a description, for runyard's own files


@dataclass(frozen=True)
class CrateRun:
    """A recorded run as the crate shows it."""

    run: RunRecord
    folder: str  # "runs/<name>/"
    inputs: Sequence[str]  # crate paths of the version files it read
    outputs: Sequence[CrateFile] = field(default_factory=tuple)
    instrument: str | None = None  # crate path of the version file it executed, if one


def crate_metadata(version: RunRecord, files: Sequence[CrateFile], runs: Sequence[CrateRun],
                   extras: Sequence[CrateFile] = (), license: str | None = None
                   ) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document of the export (a JSON-ready dict)."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate(version="1.1")
    _root(crate, version)
    crate.root_dataset["license"] = {"@id": _license(crate, license, ContextEntity)}
    crate.add(ContextEntity(crate, PROFILE, properties={
        "@type": "CreativeWork", "name": "Process Run Crate", "version": "0.5"}))
    crate.add_dataset(None, "workspace/", properties={
        "name": f"version {version.name}", "description": "the files of the version"})
    programs = {run.instrument for run in runs}
    ids = {e.path: crate.add_file(None, e.path, properties=_file_props(e, programs,
                                                                       version.name)).id
           for e in [*files, *extras]}
    actions = [_add_run(crate, ids, run, ContextEntity) for run in runs]
    crate.root_dataset["mentions"] = [{"@id": a} for a in actions]
    crate.metadata.extra_terms = dict(TERMS)
    return dict(crate.metadata.generate())


def _root(crate: Any, version: RunRecord) -> None:
    crate.name = f"runyard version {version.name} and its recorded runs"
    crate.description = version.description or (
        f"Version {version.name} ({version.id}) of a workspace, exported by runyard with every "
        "run recorded from it.")
    crate.datePublished = iso(version.ended or version.created)
    crate.root_dataset["identifier"] = version.id
    crate.root_dataset["conformsTo"] = {"@id": PROFILE}


def _license(crate: Any, given: str | None, entity: Any) -> str:
    """The license entity: the one given, else one saying that none was stated."""
    if given:
        crate.add(entity(crate, given, properties={"@type": "CreativeWork", "name": given}))
        return given
    crate.add(entity(crate, NO_LICENSE, properties={
        "@type": "CreativeWork", "name": "no license stated",
        "description": "The author stated no license when exporting (`runyard export "
        "--license`); ask them before reusing this work."}))
    return NO_LICENSE


def _file_props(entry: CrateFile, programs: set[str | None] | None = None,
                version: str | None = None) -> dict[str, Any]:
    """A file's properties; one a run executed is a ``SoftwareApplication`` too, of the
    version it belongs to."""
    props: dict[str, Any] = {"name": entry.path.rsplit("/", 1)[-1],
                             "contentSize": str(entry.size), "sha256": entry.sha256}
    kind = mimetypes.guess_type(entry.path, strict=False)[0]
    props["encodingFormat"] = kind or "application/octet-stream"
    if programs and entry.path in programs:
        props["@type"] = ["File", "SoftwareApplication"]
        props["softwareVersion"] = version
    if entry.about:
        props["description"] = entry.about
    return props


def _add_run(crate: Any, ids: dict[str, str], part: CrateRun, entity: Any) -> str:
    run = part.run
    crate.add_dataset(None, part.folder, properties={
        "name": f"outputs of run {run.name}", "description": f"files run {run.name} wrote"})
    results = [crate.add_file(None, o.path, properties=_file_props(o)).id for o in part.outputs]
    action_id = f"#run-{run.id}"
    props: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"recorded run {run.name}",
        "identifier": run.id,
        "description": _describe(run),
        "instrument": {"@id": _instrument(crate, ids, part, entity)},
        "object": [{"@id": ids[p]} for p in part.inputs],
        "result": [{"@id": r} for r in results],
        "agent": {"@id": _agent(crate, run, entity)},
        "actionStatus": SCHEMA + action_status(run.status),  # (a string, as the profile has it)
        "environment": _values(crate, entity, action_id, "env", environment_values(run)),
        "resourceUsage": _values(crate, entity, action_id, "res", resource_values(run)),
    }
    if run.started is not None:
        props["startTime"] = iso(run.started)
    if run.ended is not None:
        props["endTime"] = iso(run.ended)
    if run.status is not Status.SUCCEEDED:
        props["error"] = run.status_reason or f"the run is {run.status.value}"
    crate.add(entity(crate, action_id, properties=props))
    return action_id


def _describe(run: RunRecord) -> str:
    argv = run.internals.get("entrypoint") or []
    command = " ".join(str(a) for a in argv) if isinstance(argv, list) else str(argv)
    text = f"`{command}` run by `runyard record` ({run.status.value}"
    code = run.internals.get("exit_code")
    text += ")" if code is None else f", exit code {code})"
    return f"{text}: {run.description}" if run.description else text


def _instrument(crate: Any, ids: dict[str, str], part: CrateRun, entity: Any) -> str:
    """The entrypoint: the version's file it ran, else a SoftwareApplication by name."""
    if part.instrument is not None:
        return ids[part.instrument]
    argv = part.run.internals.get("entrypoint") or ["entrypoint"]
    program = str(argv[0]) if isinstance(argv, list) and argv else "entrypoint"
    app_id = f"#software-{program.rsplit('/', 1)[-1]}"
    if crate.dereference(app_id) is None:
        crate.add(entity(crate, app_id, properties={
            "@type": "SoftwareApplication", "name": program}))
    return app_id


def _agent(crate: Any, run: RunRecord, entity: Any) -> str:
    user = run.internals.get("user") or run.environment.get("user")
    host = run.owner.host if run.owner is not None else None
    name = str(user) if user else (f"the user on {host}" if host else "the user")
    agent_id = f"#agent-{name.replace(' ', '-')}"
    if crate.dereference(agent_id) is None:
        crate.add(entity(crate, agent_id, properties={"@type": "Person", "name": name}))
    return agent_id


def _values(crate: Any, entity: Any, action_id: str, kind: str,
            values: list[dict[str, Any]]) -> list[dict[str, str]]:
    refs = []
    for value in values:
        value_id = f"{action_id}-{kind}-{value['name']}"
        crate.add(entity(crate, value_id, properties={"@type": "PropertyValue", **value}))
        refs.append({"@id": value_id})
    return refs


def action_status(status: Status) -> str:
    """The schema.org ActionStatusType of a run's status."""
    if status is Status.SUCCEEDED:
        return "CompletedActionStatus"
    if status.is_final or status is Status.LOST:
        return "FailedActionStatus"
    return "ActiveActionStatus" if status is Status.RUNNING else "PotentialActionStatus"


def environment_values(run: RunRecord) -> list[dict[str, Any]]:
    """The run's environment (Python, platform, lock, specs used and not) and how it ran."""
    found = {**run.environment, **{k: run.internals.get(k) for k in
                                  ("executor", "network", "env")}}
    return [{"name": k, "value": _text(v)} for k, v in sorted(found.items()) if v is not None]


def resource_values(run: RunRecord) -> list[dict[str, Any]]:
    """The run's resource usage, each number with its unit."""
    found = dict(run.resources)
    if run.started is not None and run.ended is not None:
        found.setdefault("wall_time", round(run.ended - run.started, 6))
    values = []
    for name, value in sorted(found.items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            item: dict[str, Any] = {"name": name, "value": value}
            if name in UNITS:
                item["unitCode"] = UNITS[name]
            values.append(item)
    return values


def _text(value: Any) -> str | int | float | bool:
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True)


def iso(seconds: float) -> str:
    """A time as ISO 8601 with its UTC offset."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")
