"""Creating runs in a store (ids, generated names, validated fields), and deleting them: the
one place every deletion (``runyard run delete``, the server's ``DELETE /runs/{id}``) goes
through, so a recorded run or a version is never deleted alone."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from runyard.core.naming import with_unique_name
from runyard.errors import ConflictError, RunNotFound
from runyard.model import Kind, RunRecord, Status, new_id
from runyard.stores import RunStore


def create_run(
    store: RunStore,
    *,
    name: str | None = None,
    folder: str = "/",
    kind: Kind = Kind.TRACKED,
    status: Status = Status.CREATED,
    description: str | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    **fields: Any,
) -> RunRecord:
    """Create a run (named ``adjective-noun`` unless ``name`` is given) and return it.

    A run created as ``running`` or ``pending`` takes that one checked step from ``created``
    before it is written, so it is stored in one write with its timestamps set.
    """
    now = time.time()

    def attempt(candidate: str) -> RunRecord:
        run = RunRecord(
            id=new_id(),
            name=candidate,
            folder=folder,
            kind=kind,
            description=description,
            tags=frozenset(tags),
            metadata=dict(metadata or {}),
            parameters=dict(parameters or {}),
            created=now,
            **fields,
        )
        if status is not Status.CREATED:
            run = run.with_status(Status.parse(status), now=now)
        return store.create_run(run)

    return with_unique_name(attempt, name)


DELETING = "deleting"  # set in a version's internals by ``version delete`` before it starts


def delete_run(store: RunStore, run_id: str) -> None:
    """Delete the run ``run_id`` and its run log, unless it is a version or one of a version's
    recorded runs: those go only with their version (``runyard version delete``), which marks
    the version ``deleting`` first. ``RunNotFound`` if there is no such run."""
    check_deletable(store, store.get_run(run_id))
    store.delete_run(run_id)


def check_deletable(store: RunStore, run: RunRecord) -> None:
    """ConflictError if ``run`` may not be deleted alone (see ``delete_run``)."""
    if run.kind is Kind.VERSION and not run.internals.get(DELETING):
        _refuse(run, run.name)
    if run.kind is Kind.RECORDED:
        version_id = str(run.internals.get("version") or "")
        try:
            version = store.get_run(version_id) if version_id else None
        except RunNotFound:
            version = None
        if version is not None and not version.internals.get(DELETING):
            _refuse(run, version.name)


def _refuse(run: RunRecord, version: str) -> None:
    raise ConflictError(f"run {run.name} is a {run.kind.value} run and cannot be deleted "
                        f"alone; delete its version with `runyard version delete {version}`")
