"""Starting a supervisor detached from the command line that asks for it.

``prefork`` forks it early, by double fork into a session of its own, before the calling
process opens any database (a forked child must not inherit SQLite's per-process lock state)
and before it imports what only the caller needs. While the caller records the run, the
waiting supervisor imports the modules it needs; then it is told the run id through a pipe.
A second pipe carries a byte each time the supervisor changes the run's status, and reaches
end of file when the supervisor exits, so the caller can wait for those events instead of
polling the store. ``spawn`` starts a supervisor in a fresh interpreter (from any process).
Both start it the one way the process layer does (``runyard.processes.detach``).

This module is imported before the fork: it must stay light.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.processes.detach import detach_here, python_argv, redirect, spawn_detached, subreaper

if TYPE_CHECKING:
    from runyard.model import Owner

LINGER_S = 10.0
UNSTARTED = "the command line that created it ended before it started the run"


class Handle:
    """A supervisor forked before any database was opened, waiting to be told its run.

    ``events`` is the read end of the supervisor's event pipe (see the module docstring).
    The intermediate child of the double fork is reaped, and the supervisor's pid read, only
    when they are wanted: the caller goes on with its work meanwhile."""

    def __init__(self, middle: int, go: int, events: int, pid_pipe: int) -> None:
        self._middle, self._go, self.events, self._pid_pipe = middle, go, events, pid_pipe
        self._pid: int | None = None

    @property
    def owner(self) -> Owner | None:
        """The supervisor's owner record (``None`` if it never started)."""
        from runyard.processes.owners import owner_of

        return owner_of(self.pid) if self.pid > 0 else None

    @property
    def pid(self) -> int:
        """The supervisor's pid (0 if it never started)."""
        if self._pid is None:
            with os.fdopen(self._pid_pipe, "rb") as answer:
                self._pid = int(answer.read() or b"0")
            self._pid_pipe = -1
        return self._pid

    def start(self, run_id: str, log_path: Path) -> None:
        os.write(self._go, f"{run_id}\n{log_path}".encode())
        self.abandon()

    def abandon(self) -> None:
        """No run after all (or it was handed over): the waiting supervisor is released."""
        if self._go >= 0:
            os.close(self._go)
            self._go = -1
        self._reap()

    def close(self) -> None:
        self.abandon()
        for fd in (self.events, self._pid_pipe):
            if fd >= 0:
                os.close(fd)
        self.events = self._pid_pipe = -1

    def _reap(self) -> None:
        if self._middle > 0:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._middle, 0)  # it exits as soon as it has forked
            self._middle = 0


def prefork(url: str) -> Handle:
    """Fork the supervisor now (double fork, new session); see the module docstring."""
    go_read, go_write = os.pipe()
    pid_read, pid_write = os.pipe()
    events_read, events_write = os.pipe()
    child = os.fork()
    if child == 0:
        for fd in (go_write, pid_read, events_read):
            os.close(fd)
        _detached_child(url, go_read, pid_write, events_write)
    for fd in (go_read, pid_write, events_write):
        os.close(fd)
    return Handle(child, go_write, events_read, pid_read)


def _detached_child(url: str, go: int, report: int, events: int) -> None:
    code = 1
    try:
        detach_here(keep=(go, report, events))  # nothing of the caller's stays open
        with contextlib.suppress(OSError):  # the caller may not want it any more
            os.write(report, str(os.getpid()).encode())
        os.close(report)
        redirect(Path(os.devnull))  # hold none of the caller's streams open (until the log)
        with contextlib.suppress(Exception):  # what fails here fails again, and is reported
            from runyard.commands.supervisor import prepare

            prepare(url)
        import gc

        gc.freeze()  # the modules are never garbage: later collections need not walk them
        with os.fdopen(go, "rb") as orders:
            run_id, _, log_path = orders.read().decode().partition("\n")
        if not run_id:
            code = _end_unstarted(url)
            return
        code = _become_supervisor(url, run_id, Path(log_path), events)
    finally:
        os._exit(code)


def _end_unstarted(url: str) -> int:
    """The command line ended without telling us our run: if it had recorded one as ours
    (it was killed between recording and starting it), that run fails now, with its output
    buffers, instead of staying ``pending`` for ever."""
    from runyard.commands.context import open_context
    from runyard.errors import ConflictError
    from runyard.model import Kind, Status
    from runyard.processes.owners import this_owner
    from runyard.stores import RunFilter

    ctx = open_context(url)
    try:
        me = this_owner()
        waiting = RunFilter(status=frozenset({Status.PENDING}), kind=Kind.COMMAND)
        for run in ctx.store.list_runs(waiting):
            if run.owner != me:
                continue
            with contextlib.suppress(ConflictError):  # canceled meanwhile: ended already
                ctx.store.update_status(run.id, Status.FAILED, UNSTARTED, expect=Status.PENDING)
                for name in run.parameters["spec"]["buffers"]["outputs"]:
                    ctx.registry.finish(run.parameters["buffers"][name], False, UNSTARTED)
        return 0
    finally:
        ctx.close()


def _become_supervisor(url: str, run_id: str, log_path: Path, events: int) -> int:
    from runyard.commands.supervisor import supervise

    redirect(log_path)
    subreaper()
    os.set_blocking(events, False)

    def notify() -> None:
        with contextlib.suppress(OSError):
            os.write(events, b".")

    return supervise(url, run_id, notify, lambda: _linger(events))


def _linger(events: int) -> None:
    """Wait (``LINGER_S`` at most) until the command line has closed the event pipe.

    Meanwhile the supervisor keeps its database connections open, so the command line's are
    never the last ones closed: SQLite checkpoints its log when the last one closes, and that
    work (and its fsyncs) is then done here, after the command line has ended."""
    import select

    poller = select.poll()
    poller.register(events, select.POLLERR)  # a pipe's write end: its reader closed it
    with contextlib.suppress(OSError):
        poller.poll(LINGER_S * 1000)


def spawn(url: str, run_id: str, log_path: Path) -> int:
    """Start a supervisor in a fresh interpreter (safe from any process); returns its pid."""
    argv = python_argv("runyard.commands.supervisor", run_id, "--store", url)
    return spawn_detached(argv, log_path)
