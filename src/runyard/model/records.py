"""The records of the domain: runs, steps, attempts, metrics, events, log lines, artifacts."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from runyard.model.status import Status, check_transition


class Kind(StrEnum):
    TRACKED = "tracked"
    WORKFLOW = "workflow"
    COMMAND = "command"
    RECORDED = "recorded"
    VERSION = "version"


class Stage(StrEnum):
    PUT = "put"
    GET = "get"


@dataclass(frozen=True)
class Owner:
    """The process that is running a run: it heartbeats while alive."""

    host: str
    pid: int
    started: float  # the process start time, to tell a reused pid apart


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    folder: str = "/"
    kind: Kind = Kind.TRACKED
    status: Status = Status.CREATED
    status_reason: str | None = None
    description: str | None = None
    tags: frozenset[str] = frozenset()
    metadata: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    heartbeat: float | None = None
    owner: Owner | None = None
    code: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    # What the machinery that runs it keeps about a run, apart from what the user sets in
    # ``metadata``: a workflow's DAG, plan, results and counts. Written only by ``create_run``
    # and merged by ``update_status(..., internals=...)``; ``merge_metadata`` never touches it.
    internals: dict[str, Any] = field(default_factory=dict)

    def with_status(self, new: Status, reason: str | None = None,
                    now: float | None = None) -> RunRecord:
        """The run after a checked status transition, with its timestamps kept right."""
        check_transition(self.id, self.status, new)
        now = time.time() if now is None else now
        changes: dict[str, Any] = {"status": new, "status_reason": reason}
        if new is Status.RUNNING and self.started is None:
            changes["started"] = now
        if new.is_final:
            changes["ended"] = now
        return self.replace(**changes)

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with ``changes``, as ``dataclasses.replace`` makes it but without calling
        ``__init__`` again: a frozen dataclass sets each of a run's fields through
        ``object.__setattr__``, which made a copy cost more than reading a run's row."""
        if not changes.keys() <= RUN_FIELDS:
            unknown = sorted(changes.keys() - RUN_FIELDS)
            raise TypeError(f"RunRecord has no field {unknown[0]!r}")
        return _built(RunRecord, {**self.__dict__, **changes})

    @classmethod
    def of_fields(cls, fields: dict[str, Any]) -> RunRecord:
        """The run with exactly these fields (every one given), made as ``replace`` makes
        one."""
        if fields.keys() != RUN_FIELDS:
            raise TypeError(f"a run needs exactly the fields {sorted(RUN_FIELDS)}")
        return _built(cls, fields)


def _built(cls: type[RunRecord], fields: dict[str, Any]) -> RunRecord:
    run = object.__new__(cls)
    run.__dict__.update(fields)  # (a frozen dataclass only refuses ``setattr``)
    return run


RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))


@dataclass(frozen=True)
class Attempt:
    number: int
    status: Status = Status.RUNNING
    started: float | None = None
    ended: float | None = None
    message: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass(frozen=True)
class Step:
    name: str
    status: Status = Status.CREATED
    kind: str = "task"
    created: float = field(default_factory=time.time)
    attempts: tuple[Attempt, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def with_attempt(self, attempt: Attempt) -> Step:
        """This step with ``attempt`` added, or replacing the attempt of the same number."""
        others = [a for a in self.attempts if a.number != attempt.number]
        attempts = tuple(sorted([*others, attempt], key=lambda a: a.number))
        return dataclasses.replace(self, attempts=attempts, status=attempt.status)


class Metric(NamedTuple):
    name: str
    value: float
    step: int | None = None
    time: float = 0.0


class Event(NamedTuple):
    time: float
    message: str
    level: str = "info"


class LogLine(NamedTuple):
    time: float
    text: str
    stream: str = "stdout"
    step: str | None = None


@dataclass(frozen=True)
class Artifact:
    name: str
    hash: str
    size: int
    stage: Stage = Stage.PUT
    time: float = field(default_factory=time.time)
    step: str | None = None
    category: str | None = None
