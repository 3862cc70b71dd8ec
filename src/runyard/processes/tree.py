"""Stopping a process tree: a polite SIGTERM to the tree, SIGKILL for what is left.

``kill_tree`` is how a supervisor stops a job it started (cancel, timeout, a failed pump);
``reap_orphans`` clears what a subreaper inherited. How a tree ends when its owner dies (the
warden) is in ``warden.py``; ``guard_owner`` gives a long-lived child (a pool worker) the same
end: when its owner dies, its whole tree does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING

from runyard.processes.warden import (
    POLL_PARENT_MS,
    become_subreaper,
    descendants,
    kill_descendants,
    owner_gone,
    watch_owner,
)

if TYPE_CHECKING:
    import subprocess

    import psutil

GRACE_S = 3.0


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process below it (that still exists)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(proc: subprocess.Popen[bytes], grace: float = GRACE_S) -> None:
    """SIGTERM the process group and tree of ``proc``; SIGKILL what is left after ``grace``."""
    import psutil

    members = tree(proc.pid) if proc.poll() is None else []
    _signal_all(proc.pid, members, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=grace)
    if alive or proc.poll() is None:
        _signal_all(proc.pid, alive, signal.SIGKILL)
    proc.wait()
    sweep_group(proc.pid)


def sweep_group(pgid: int) -> None:
    """SIGKILL whatever is left in a finished job's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_all(pgid: int, members: list[psutil.Process], sig: signal.Signals) -> None:
    import psutil

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for member in members:
        with contextlib.suppress(psutil.Error):
            member.send_signal(sig)


def reap_orphans() -> None:
    """Kill and reap the processes this subreaper inherited (a job's leftovers)."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return  # no child at all: as a subreaper, we would have inherited any orphan
    kill_descendants()


def guard_owner(owner: int) -> None:
    """In a child of ``owner``: become a subreaper, and when ``owner`` dies, SIGKILL every
    descendant of this process and exit (a daemon thread waits on the owner's pidfd)."""
    become_subreaper()
    try:
        fd = watch_owner(owner)
    except ProcessLookupError:
        os._exit(137)
    threading.Thread(target=_end_with, args=(owner, fd), name="runyard-owner-guard",
                     daemon=True).start()


def _end_with(owner: int, fd: int) -> None:
    import select
    import time

    if fd >= 0:
        select.select([fd], [], [])
    while not owner_gone(owner):  # (at once with a pidfd)
        time.sleep(POLL_PARENT_MS / 1000)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGSTOP)  # frozen first: none forks while the rest die
    kill_descendants()
    os._exit(137)
