"""What becomes of the runs a process has open when it exits, forks or is told to terminate.

Each open run registers a closer here; the closer is told why it is called:

* ``"exit"`` — the interpreter is exiting with the run still open: an ``atexit`` hook closes it
  (succeeded, or failed after an uncaught error), so queued values are written.
* ``"fork"`` — this is a child made by ``os.fork`` (a fork-start ``multiprocessing`` pool does
  it too). The child inherits the parent's ``Run`` objects, their queues too, but not the
  background thread that writes them, and a store connection is not safe to share across a
  fork. So every inherited run is marked as the parent's: logging to it in the child raises a
  clear ``TrackingError`` instead of queueing values that nobody would write, and the child
  never writes (or closes) what the parent queued.
* ``"sigterm"`` — the process got SIGTERM (``kill``, a batch system's time limit, a container
  stop). If the program left SIGTERM at its default action, a handler closes every open run as
  ``canceled`` — what was queued is written first — and then ends the process by SIGTERM, as
  the default action would have. A handler the program installed itself is left alone (closing
  its runs is then its part); a forked child gets the default action back.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Literal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging


Cause = Literal["exit", "fork", "sigterm"]
Closer = Callable[[Cause], None]


class OpenRuns:
    """The open runs of this process, by a key per run, with their closers."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entrant: the SIGTERM handler may interrupt a holder
        self._closers: dict[int, tuple[str, Closer]] = {}
        self._hooked = False

    def add(self, key: object, run_id: str, closer: Closer) -> None:
        with self._lock:
            if not self._hooked:
                atexit.register(self.close_all, "exit")
                os.register_at_fork(after_in_child=self._forked)
                self._hooked = True
            self._closers[id(key)] = (run_id, closer)
        _handle_sigterm()

    def discard(self, key: object) -> None:
        with self._lock:
            self._closers.pop(id(key), None)

    def close_all(self, cause: Cause) -> None:
        with self._lock:
            closers = list(self._closers.values())
            self._closers.clear()
        for run_id, closer in closers:
            try:
                closer(cause)
            except Exception as exc:  # at exit there is no one left to raise to
                _log().warning("runyard: closing run %s (%s) failed: %s", run_id, cause, exc)

    def _forked(self) -> None:
        """In a forked child: the inherited runs are the parent's."""
        self._lock = threading.RLock()  # another thread of the parent may have held it
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            with contextlib.suppress(ValueError):  # (only a main thread may; the child's is)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.close_all("fork")


open_runs = OpenRuns()


def _handle_sigterm() -> None:
    """Install ``_on_sigterm`` if SIGTERM has its default action (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Close the open runs as canceled, then die of SIGTERM as the default action would."""
    open_runs.close_all("sigterm")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the signal is on its way; never return into the interrupted code
    os._exit(128 + signal.SIGTERM)


def _log() -> logging.Logger:
    """The tracking logger, imported when there is something to say (``logging`` costs 3 ms
    of the first ``Run()``, issue 16)."""
    import logging

    return logging.getLogger("runyard.tracking")
