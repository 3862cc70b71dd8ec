"""The run status lifecycle, shared by every kind of run, checked in this one place.

    created ──► pending ──► running ──► succeeded
       │           │           ├──────► failed
       │           ├──► failed ├──────► canceling ──► canceled
       │           │           └──────► lost ──► running (reconnect)
       └───────────┴──────────────────► canceled
"""

from __future__ import annotations

from enum import StrEnum

from runyard.errors import IllegalTransition, ValidationError


class Status(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def is_active(self) -> bool:
        """Work may still be happening (or the run is waiting to start)."""
        return not self.is_final and self is not Status.LOST

    @classmethod
    def parse(cls, value: str | Status) -> Status:
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValidationError(f"unknown status {value!r}; use one of: {names}") from None


FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.PENDING, Status.RUNNING, Status.CANCELED}),
    Status.PENDING: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELING, Status.LOST}),
    Status.CANCELING: frozenset({Status.CANCELED, Status.LOST}),
    Status.LOST: frozenset({Status.RUNNING}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}


def can_transition(old: Status, new: Status) -> bool:
    return new in TRANSITIONS[old]


def check_transition(run_id: str, old: Status, new: Status) -> None:
    """Raise ``IllegalTransition`` unless ``old -> new`` is in the lifecycle."""
    if not can_transition(old, new):
        allowed = sorted(s.value for s in TRANSITIONS[old])
        raise IllegalTransition(run_id, old.value, new.value, allowed)


def status_path(old: Status, new: Status) -> list[Status] | None:
    """The shortest list of legal transitions taking ``old`` to ``new`` (``[]`` if equal),
    or ``None`` when the lifecycle has no way there."""
    paths: dict[Status, list[Status]] = {old: []}
    queue = [old]
    while queue:
        here = queue.pop(0)
        if here is new:
            return paths[here]
        for nxt in sorted(TRANSITIONS[here]):
            if nxt not in paths:
                paths[nxt] = [*paths[here], nxt]
                queue.append(nxt)
    return None
