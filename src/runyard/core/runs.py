"""Creating runs in a store: ids, generated names, validated fields."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from runyard.core.naming import with_unique_name
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
