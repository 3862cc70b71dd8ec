"""Following a command run from any process: its status changes, its logs, its writers.

Followers poll the store briefly (a few milliseconds, backing off to ``POLL_MAX_S``), so a
change shows at once without multi-second waits, and they check the supervisor's liveness
every ``LIVENESS_S``: a dead supervisor makes the run ``lost`` (``running``/``canceling``) or
``failed`` (still ``pending``), never stuck. A follower that holds the event pipe of a
supervisor it forked (``detach.Handle.events``) sleeps on that pipe instead: it wakes the
moment the supervisor changes the status or exits.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from runyard.errors import ConflictError
from runyard.model import LogLine, RunRecord, Status

if TYPE_CHECKING:
    from runyard.commands.registry import Buffer
    from runyard.stores import RunStore

POLL_MIN_S, POLL_MAX_S = 0.005, 0.05
LIVENESS_S = 0.5
LOG_POLL_S = 0.1
NEVER_STARTED = "the supervisor exited before the job started"


def refresh(store: RunStore, run: RunRecord) -> RunRecord:
    """``run`` with its owner's liveness applied (``lost``, or ``failed`` if never started)."""
    from runyard.core import liveness  # psutil: only once a liveness check is due

    run = liveness.refresh(store, run)
    pending = run.status is Status.PENDING and run.owner is not None
    if pending and run.owner is not None and liveness.owner_alive(run.owner) is False:
        try:
            return store.update_status(run.id, Status.FAILED, NEVER_STARTED,
                                       expect=Status.PENDING)
        except ConflictError:
            return store.get_run(run.id)
    return run


def ended(run: RunRecord) -> bool:
    """Nothing more will happen to this run: final, or lost (command runs never restart)."""
    return run.status.is_final or run.status is Status.LOST


def statuses(store: RunStore, run_id: str, events: int | None = None) -> Iterator[RunRecord]:
    """The run now, then each time its status (or reason) changes, until it has ended.

    ``events``: the event pipe of the run's supervisor, if this process forked it."""
    last: tuple[Status, str | None] | None = None
    pause = POLL_MIN_S
    checked = 0.0 if events is None else time.monotonic()  # its supervisor has just started
    while True:
        run = store.get_run(run_id)
        if time.monotonic() - checked >= LIVENESS_S:
            run, checked = refresh(store, run), time.monotonic()
        if (run.status, run.status_reason) != last:
            last, pause = (run.status, run.status_reason), POLL_MIN_S
            yield run
        if ended(run):
            return
        if events is not None:
            if not _event(events, POLL_MAX_S):
                events, checked = None, 0.0  # the supervisor exited: check it at once
            continue
        time.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)


def _event(events: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for an event; False once the pipe is at end of file."""
    if select.select([events], [], [], timeout)[0]:
        try:
            return bool(os.read(events, 4096))
        except BlockingIOError:
            return True
    return True


def wait(store: RunStore, run_id: str, on_change: Callable[[RunRecord], None] | None = None,
         events: int | None = None) -> RunRecord:
    """Follow the run to its end, calling ``on_change`` for each status; the last run."""
    run = store.get_run(run_id)
    for run in statuses(store, run_id, events):
        if on_change is not None:
            on_change(run)
    return run


def merged_logs(lines: list[LogLine]) -> list[LogLine]:
    """All replicas' stdout and stderr in time order (stable for equal times)."""
    return sorted(lines, key=lambda line: line.time)


class LogFollower:
    """Reads only the lines added since the last call, by time (and count at equal times)."""

    def __init__(self, store: RunStore, run_id: str, since: float | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.since, self.seen_at_since = since, 0

    def new_lines(self) -> list[LogLine]:
        lines = merged_logs(self.store.read_logs(self.run_id, since=self.since))
        if self.since is not None:
            same = [line for line in lines if line.time == self.since]
            lines = lines[min(self.seen_at_since, len(same)):]
        if lines:
            newest = lines[-1].time
            earlier = self.seen_at_since if newest == self.since else 0
            self.seen_at_since = earlier + sum(1 for line in lines if line.time == newest)
            self.since = newest
        return lines


def writer_gone(store: RunStore | None) -> Callable[[Buffer], str | None]:
    """Why a buffer's writer is gone (its process died, its run ended), or ``None``."""

    def gone(buffer: Buffer) -> str | None:
        from runyard.core import liveness

        if buffer.owner is not None and liveness.owner_alive(buffer.owner) is False:
            return f"its writer (pid {buffer.owner.pid} on {buffer.owner.host}) died"
        if buffer.run_id is None or store is None:
            return None
        run = refresh(store, store.get_run(buffer.run_id))
        return f"its run {run.id} ended {run.status.value}" if ended(run) else None

    return gone
