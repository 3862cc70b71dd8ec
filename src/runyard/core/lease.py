"""The run lease: one owner per executing run, its heartbeat, its cancel request, its end.

Every kind of run that executes (a tracked ``Run``, a workflow run, a command run, a recorded
run) is held by one process: its owner. The owner records itself (``take``), beats the heartbeat
so readers on other hosts can tell it lives (``core.liveness``), looks now and then for a cancel
asked for from another process (status ``canceling``), and writes the final status (``end``) by
legal steps. Each kind keeps its own loop (a tracked run's writer thread, the workflow recorder's
thread, the command supervisor's watch loop); they all call ``tick`` from it, so the rules live
here once:

- a heartbeat is written every ``heartbeat_s`` (with whatever the caller adds, e.g. resources);
  a run found ``lost`` whose owner beats again goes back to ``running``;
- a cancel request is looked for every ``cancel_check_s``;
- the end goes by the shortest legal path: ``canceling`` ends ``canceled`` whatever the owner
  meant (the cancel came first), a ``lost`` run first returns to ``running``, and a run already
  ended by someone else is left as it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from runyard.errors import ConflictError
from runyard.model import Owner, RunRecord, Status, status_path
from runyard.processes.owners import this_owner
from runyard.stores import RunStore

CANCEL_CHECK_S = 0.25


class Lease:
    """The lease one process holds on one run (see the module docstring)."""

    def __init__(self, store: RunStore, run_id: str, *, heartbeat_s: float | None,
                 cancel_check_s: float | None = CANCEL_CHECK_S,
                 owner: Owner | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.heartbeat_s, self.cancel_check_s = heartbeat_s, cancel_check_s
        self.owner = owner if owner is not None else this_owner()
        now = time.monotonic()
        self._beat_due = _after(now, heartbeat_s)
        self._cancel_due = _after(now, cancel_check_s)

    def take(self, **fields: Any) -> RunRecord:
        """Record this process as the run's owner, with a heartbeat (and ``fields``)."""
        self._beat_due = _after(time.monotonic(), self.heartbeat_s)
        return self.store.update_run(self.run_id, owner=self.owner, heartbeat=time.time(),
                                     **fields)

    def tick(self, now: float | None = None, **fields: Any) -> bool:
        """Beat and look for a cancel request when each is due; ``True`` once one is seen.

        ``fields`` go with the heartbeat (e.g. ``resources``); store errors propagate to the
        caller's loop, which decides whether a missed beat matters."""
        now = time.monotonic() if now is None else now
        if now >= self._beat_due:
            self._beat_due = _after(now, self.heartbeat_s)
            self.beat(**fields)
        if now >= self._cancel_due:
            self._cancel_due = _after(now, self.cancel_check_s)
            return self.cancel_requested()
        return False

    def next_due(self) -> float:
        """The monotonic time at which ``tick`` has something to do."""
        return min(self._beat_due, self._cancel_due)

    def beat(self, **fields: Any) -> RunRecord:
        """Write the heartbeat now; a ``lost`` run whose owner beats again runs again."""
        run = self.store.update_run(self.run_id, heartbeat=time.time(), **fields)
        if run.status is Status.LOST:
            with suppress(ConflictError):  # someone else moved it first
                run = self.store.update_status(self.run_id, Status.RUNNING,
                                               "the owner's heartbeat resumed",
                                               expect=Status.LOST)
        return run

    def cancel_requested(self) -> bool:
        return self.store.get_run(self.run_id).status is Status.CANCELING

    def end(self, final: Status, reason: str | None = None, *,
            internals: Mapping[str, Any] | None = None, **fields: Any) -> RunRecord:
        """Move the run to ``final`` (``canceled`` if a cancel was asked for meanwhile) by
        legal steps. ``fields`` (e.g. ``resources``) are written first; ``internals`` are
        merged in the same write as the final status. A run someone else ended is returned
        as it is."""
        closing = {"heartbeat": time.time(), **fields} if fields else None
        record = None
        try:  # the usual case, in one write (fields too): a running run goes to its end
            return self.store.update_status(self.run_id, final, reason,
                                            expect=Status.RUNNING, internals=internals,
                                            fields=closing)
        except ConflictError:  # (``canceled`` is refused here: it goes through ``canceling``,
            pass  # but an ``http://`` store away keeps the end and sends it by legal steps)
        if closing:
            record = self.store.update_run(self.run_id, **closing)
        if record is None:
            record = self.store.get_run(self.run_id)
        for _ in range(8):  # each lap follows a change someone else made meanwhile
            if record.status.is_final:
                return record
            target, why = final, reason
            if record.status is Status.CANCELING and final is not Status.CANCELED:
                target, why = Status.CANCELED, reason or "canceled by request"
            try:
                return self._walk(record, target, why, internals)
            except ConflictError:
                record = self.store.get_run(self.run_id)
        return record

    def _walk(self, record: RunRecord, target: Status, reason: str | None,
              internals: Mapping[str, Any] | None) -> RunRecord:
        path = status_path(record.status, target)
        if path is None:
            raise ConflictError(
                f"run {record.name} ({record.id}) is {record.status.value}; "
                f"it cannot become {target.value}"
            )
        for hop in path:
            if hop is target:
                return self.store.update_status(self.run_id, hop, reason, expect=record.status,
                                                internals=internals)
            why = "the owner came back" if hop is Status.RUNNING else None
            record = self.store.update_status(self.run_id, hop, why, expect=record.status)
        return record


def _after(now: float, interval: float | None) -> float:
    return float("inf") if interval is None else now + interval
