"""Whether a running run's owner is still alive: computed when a run is read, written back.

Every running run records its owner (host, pid, process start time) and a heartbeat. On the
owner's own host the process table answers at once: a pid that is gone, a zombie, or a pid now
used by a process that started at another time means the owner died. From any other host only
the heartbeat can tell: a run whose last heartbeat is older than ``MISSED`` intervals (the
interval is in ``run.config["heartbeat_interval"]``; none means heartbeats are off) is lost.

No daemon watches runs. Readers (``runyard run show``, ``run list``, ``Run.reconnect``) call
``refresh`` or ``sweep``, which write ``lost`` back with a compare-and-set on the status, so a
run that changed meanwhile (its owner closed it) is left as its owner made it.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from runyard.errors import ConflictError, StoreReadOnly
from runyard.model import Owner, RunRecord, Status
from runyard.processes.owners import host_name, this_owner
from runyard.stores import RunFilter, RunStore

__all__ = ["host_name", "lost_reason", "owner_alive", "refresh", "sweep", "this_owner"]

MISSED = 3  # heartbeats missed before a run owned elsewhere is lost
START_TOLERANCE_S = 1.0  # process start times read at different moments may differ this much
WATCHED = frozenset({Status.RUNNING, Status.CANCELING})  # statuses whose owner must be alive


def owner_alive(owner: Owner) -> bool | None:
    """``True``/``False`` for an owner on this host; ``None`` when it runs on another host."""
    if owner.host != host_name():
        return None
    if owner.pid == os.getpid():
        return True
    import psutil  # imported once a check is due: a command line that checks nothing skips it

    try:
        proc = psutil.Process(owner.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - owner.started) <= START_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may not look closer


def heartbeat_interval(run: RunRecord) -> float | None:
    value = run.config.get("heartbeat_interval")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def lost_reason(run: RunRecord, now: float | None = None) -> str | None:
    """Why ``run`` is lost, or ``None`` while its owner may still be alive."""
    if run.status not in WATCHED or run.owner is None:
        return None
    owner = run.owner
    alive = owner_alive(owner)
    if alive is False:
        return f"owner process {owner.pid} on {owner.host} is gone"
    if alive is True:
        return None
    interval = heartbeat_interval(run)
    last = run.heartbeat or run.started or run.created
    now = time.time() if now is None else now
    if interval is None or now - last <= MISSED * interval:
        return None
    return (
        f"no heartbeat from {owner.host} (pid {owner.pid}) for {now - last:.0f}s; "
        f"it beats every {interval:g}s"
    )


def refresh(store: RunStore, run: RunRecord, now: float | None = None) -> RunRecord:
    """``run`` as it is now: marked ``lost`` in the store if its owner died."""
    reason = lost_reason(run, now)
    if reason is None:
        return run
    try:
        lost = store.update_status(run.id, Status.LOST, reason, expect=run.status)
        lose_attempts(store, run.id, reason)
        return lost
    except ConflictError:  # changed meanwhile (closed, or a reconnect): take what is there
        return store.get_run(run.id)
    except StoreReadOnly:  # a reader who may not write: shown lost, not stored so
        return run.replace(status=Status.LOST, status_reason=reason)


def lose_attempts(store: RunStore, run_id: str, reason: str) -> None:
    """The attempts still ``running`` in a run found ``lost`` are lost with it (their owner,
    and the processes it ran them in, are gone); an owner that comes back records its own."""
    now = time.time()
    for step in store.get_steps(run_id):
        for attempt in step.attempts:
            if attempt.status is Status.RUNNING:
                store.upsert_attempt(run_id, step.name, replace(
                    attempt, status=Status.LOST, ended=now, message=reason))


def sweep(store: RunStore, now: float | None = None) -> int:
    """Refresh every running run of ``store``; returns how many were found lost."""
    running = store.list_runs(RunFilter(status=WATCHED))
    return sum(refresh(store, run, now).status is Status.LOST for run in running)
