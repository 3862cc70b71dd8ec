"""MLflow experiments kept in the store: one versioned registry record per experiment.

An experiment needs a home of its own (it exists, with its id, tags and lifecycle, before it
has a run, and every server worker must see it), yet the store contract has no table for it.
So each experiment is a codespec-registry record named ``mlflow-experiment.<id>`` whose content
is the experiment (``{"mlflow_experiment": 1, "name", "folder", "lifecycle", "tags",
"created", "updated"}``) and whose latest version is its present state. The registry gives
what is needed, in every backend and across processes: a new id is claimed by adding version
1 of the next name (``add_codespec(..., number=1)`` adds it once; a second claimant is told it
exists and tries the next id), and a change is a compare-and-set (version n+1 of a record read
at n: two writers never both win). Ids are the decimal numbers 1, 2, …: stable across
restarts and workers. ``runyard codespec list`` leaves these records out.

Experiment ``0``, "Default", is the root folder ``/`` and needs no record. A folder with runs
but no experiment (runs logged with runyard's own ``Run``) gets one on first sight, named
after its path, so every run belongs to exactly one experiment: the one whose folder is the
run's own.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from runyard.errors import ValidationError
from runyard.model import validate as check
from runyard.model.registry import CodespecRecord
from runyard.server.mlflow.errors import EXISTS, MlflowError, invalid, missing
from runyard.stores import RunStore

PREFIX = "mlflow-experiment."
MARK = "mlflow_experiment"
DEFAULT_ID, DEFAULT_NAME = "0", "Default"
ACTIVE, DELETED = "active", "deleted"
GONE = "gone"  # a duplicate lost to a concurrent create: never shown
MAX_NAME = 500
_SEGMENT_BAD = re.compile(r"[^A-Za-z0-9._\- ]")
TRIES = 64


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str
    folder: str
    lifecycle: str = ACTIVE
    tags: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    version: int = 0  # the record's version this was read at (0: no record)

    def doc(self) -> dict[str, Any]:
        return {MARK: 1, "name": self.name, "folder": self.folder,
                "lifecycle": self.lifecycle, "tags": self.tags, "created": self.created,
                "updated": self.updated}


DEFAULT = Experiment(DEFAULT_ID, DEFAULT_NAME, "/")


def hidden(name: str) -> bool:
    """Whether a registry record is an experiment's (``runyard codespec list`` skips it)."""
    return name.startswith(PREFIX)


def _of(record: CodespecRecord) -> Experiment | None:
    spec = record.spec
    number = record.name[len(PREFIX):]
    if not hidden(record.name) or spec.get(MARK) != 1 or not number.isdigit():
        return None
    return Experiment(number, str(spec["name"]), str(spec["folder"]),
                      str(spec.get("lifecycle", ACTIVE)), dict(spec.get("tags") or {}),
                      float(spec.get("created", 0)), float(spec.get("updated", 0)),
                      record.version)


def every(store: RunStore) -> list[Experiment]:
    """Every experiment (Default first, then by id), deleted ones included."""
    found = [e for r in store.list_codespecs() if hidden(r.name)
             for e in [_of(r)] if e is not None and e.lifecycle != GONE]
    return [DEFAULT, *sorted(found, key=lambda e: int(e.id))]


def get(store: RunStore, experiment_id: str) -> Experiment:
    """The experiment of this id; ``RESOURCE_DOES_NOT_EXIST`` if none."""
    if experiment_id == DEFAULT_ID:
        return DEFAULT
    if not experiment_id.isascii() or not experiment_id.isdigit() or len(experiment_id) > 18:
        raise missing(f"No Experiment with id={experiment_id} exists")
    record = store.get_codespec(PREFIX + str(int(experiment_id)))
    found = None if record is None else _of(record)
    if found is None or found.lifecycle == GONE:
        raise missing(f"No Experiment with id={experiment_id} exists")
    return found


def by_name(store: RunStore, name: str) -> Experiment | None:
    """The experiment named ``name`` (deleted or not), else the one its folder would be if
    runs are there (registered now), else None."""
    known = every(store)
    for experiment in known:
        if experiment.name == name:
            return experiment
    folder = folder_of_name(name)
    if folder is not None and store.count_runs(_in(folder)) > 0 \
            and not any(e.folder == folder for e in known):
        return _claim(store, known, name, folder, time.time())
    return None


def by_folder(store: RunStore, folder: str) -> Experiment:
    """The experiment whose folder is ``folder`` (registered now if it has none)."""
    if folder == "/":
        return DEFAULT
    known = every(store)
    for experiment in known:
        if experiment.folder == folder:
            return experiment
    name = folder.lstrip("/")
    if any(e.name == name for e in known):
        name = folder
    return _claim(store, known, name, folder, time.time())


def create(store: RunStore, name: str, tags: dict[str, str]) -> Experiment:
    """A new experiment; ``RESOURCE_ALREADY_EXISTS`` if one has this name."""
    check_name(name)
    known = every(store)
    if any(e.name == name for e in known):
        raise MlflowError(f"Experiment(name={name}) already exists", EXISTS)
    folder = free_folder(known, folder_of_name(name) or "/" + _sanitised(name))
    made = _claim(store, known, name, folder, time.time(), tags)
    rival = next((e for e in every(store) if e.name == name and int(e.id) < int(made.id)),
                 None)
    if rival is not None:  # another worker created it at the same moment: theirs stands
        change(store, made, lifecycle=GONE)
        raise MlflowError(f"Experiment(name={name}) already exists", EXISTS)
    return made


def change(store: RunStore, experiment: Experiment, **fields: Any) -> Experiment:
    """``experiment`` with ``fields`` changed, written as its next version (retried on a
    concurrent change, each time from what is stored)."""
    if experiment.id == DEFAULT_ID:
        raise invalid("the Default experiment (id 0) cannot be changed here")
    for _ in range(TRIES):
        new = replace(experiment, **fields, updated=time.time())
        record, added = _add(store, new, experiment.version + 1)
        if added:
            return replace(new, version=record.version)
        experiment = get(store, experiment.id)
    raise invalid(f"experiment {experiment.id} is being changed by others; try again")


def check_name(name: str) -> str:
    if not name.strip():
        raise invalid("Invalid experiment name: ''. An experiment name must be a non-empty "
                      "string")
    if len(name) > MAX_NAME or "\x00" in name:
        raise invalid(f"experiment name is {len(name)} characters long (or holds NUL); the "
                      f"limit is {MAX_NAME}")
    return name


def folder_of_name(name: str) -> str | None:
    """The folder an experiment of this name is (``a/b`` → ``/a/b``), None if the name is no
    folder path."""
    try:
        folder = check.folder("/" + name.strip("/"))
    except ValidationError:
        return None
    return None if folder == "/" else folder


def free_folder(known: list[Experiment], folder: str) -> str:
    taken = {e.folder for e in known}
    candidate, n = folder, 1
    while candidate in taken:
        n += 1
        candidate = f"{folder}-{n}"
    return candidate


def _sanitised(name: str) -> str:
    parts = [_SEGMENT_BAD.sub("-", p).strip(" ") for p in name.split("/")]
    parts = [p if p and p[0].isascii() and p[0].isalnum() else f"x{p}" for p in parts if p]
    return "/".join(parts)[:400] or "experiment"


def _in(folder: str) -> Any:
    from runyard.stores import RunFilter

    return RunFilter(folder=folder)


def _claim(store: RunStore, known: list[Experiment], name: str, folder: str, now: float,
           tags: dict[str, str] | None = None) -> Experiment:
    """A new record under the next free id (a concurrent claimant takes another)."""
    number = max((int(e.id) for e in known), default=0) + 1
    for _ in range(TRIES):
        made = Experiment(str(number), name, folder, ACTIVE, dict(tags or {}), now, now)
        record, added = _add(store, made, 1)
        if added:
            return replace(made, version=record.version)
        number += 1
    raise invalid("could not claim an experiment id; try again")


def _add(store: RunStore, experiment: Experiment, version: int) -> tuple[CodespecRecord, bool]:
    doc = experiment.doc()
    digest = hashlib.sha256(json.dumps([version, doc], sort_keys=True).encode()).hexdigest()
    return store.add_codespec(PREFIX + experiment.id, digest, doc, time.time(), number=version)
