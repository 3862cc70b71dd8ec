"""How a tracked run opens and ends: who may reconnect, how it reaches its final status, and
what a ``Run`` says when used in a state that does not allow the call."""

from __future__ import annotations

from runyard.core import liveness
from runyard.errors import ConflictError, TrackingError
from runyard.model import RunRecord, Status

MAX_REASON = 1000


def check_reconnectable(run: RunRecord) -> None:
    if run.status.is_final:
        raise ConflictError(
            f"run {run.name} ({run.id}) has ended ({run.status.value}); a finished run is "
            "never reopened: start a new run"
        )
    owner = run.owner
    if run.status in liveness.WATCHED and owner is not None and owner != liveness.this_owner():
        raise ConflictError(
            f"run {run.name} ({run.id}) is {run.status.value} in process {owner.pid} "
            f"on {owner.host}; only a queued or lost run can be reconnected"
        )


def outcome(error: BaseException) -> tuple[Status, str]:
    if isinstance(error, KeyboardInterrupt):
        return Status.CANCELED, "interrupted (KeyboardInterrupt)"
    if isinstance(error, SystemExit) and error.code in (None, 0):
        return Status.SUCCEEDED, "exited (SystemExit 0)"
    return Status.FAILED, reason_of(error)


def reason_of(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def redacted(url: str) -> str:
    from runyard.stores import redact_url

    return redact_url(url)


def not_open(action: str, state: str, run: RunRecord | None, pid: int) -> TrackingError:
    """Why a ``Run`` in ``state`` cannot do ``action`` (``pid``: the process that opened it)."""
    if state == "new":
        return TrackingError(f"cannot {action}: call run.init() or run.reconnect() first")
    name = f"run {run.name} ({run.id})" if run else "this run"
    if state == "queued":
        return TrackingError(
            f"cannot {action}: {name} is queued (created); open it with Run().reconnect(id) first"
        )
    if state == "open":
        return TrackingError(f"cannot {action}: {name} is already open")
    if state == "forked":
        return TrackingError(
            f"cannot {action}: {name} belongs to process {pid} and this is a child it forked "
            "(os.fork, multiprocessing), whose values would never be written; send them back "
            "to the parent to log, or start a Run of the child's own"
        )
    return TrackingError(f"cannot {action}: {name} is closed; open a new Run()")
