"""Background threads that are kept and reused: ``start(target)`` without waiting for a start.

A workflow run in this process needs a few threads (the in-process runtime's workers, the
recorder) for a short while. Starting a ``threading.Thread`` costs 90 us or more, most of it
waiting for the new thread to come up, and a short run would pay that every time.
Here a finished target leaves its thread parked for ``IDLE_S`` seconds, and the next ``start``
hands its target to a parked thread (waking it is all the caller does) or starts a new one
(``_thread.start_new_thread``, which does not wait, measured 72 against 88 us: too little to
earn a private name). Threads are daemonic:
they never hold up the interpreter's exit. A child made by ``fork`` forgets the parked threads,
which do not exist there.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable

IDLE_S = 30.0


class Latch:
    """A flag set once and never cleared, and waited for: what ``threading.Event`` is used
    for when it is never cleared, made of one lock (an ``Event`` makes a ``Condition`` and an
    ``RLock``, which a workflow run would pay for several times). ``start`` answers with one
    that is set when the target has returned."""

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False  # what ``is_set`` says: the lock is also held by waiters, briefly
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            _release(self._lock)

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set (at most ``timeout`` seconds); whether it is set."""
        if self._flag:
            return True
        lock = self._lock
        if lock.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            _release(lock)  # so every other waiter passes too
        return self._flag


def _release(lock: threading.Lock) -> None:
    with contextlib.suppress(RuntimeError):  # two threads set the latch at once: one did
        lock.release()


class _Parked:
    __slots__ = ("wake", "work")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.work: tuple[Callable[[], object], str, Latch] | None = None


_idle: list[_Parked] = []
_idle_lock = threading.Lock()


def start(target: Callable[[], object], name: str = "runyard") -> Latch:
    """Run ``target()`` on a background thread (a parked one if any); returns at once."""
    done = Latch()
    with _idle_lock:
        parked = _idle.pop() if _idle else None
    if parked is not None:
        parked.work = (target, name, done)
        parked.wake.release()
    else:
        threading.Thread(target=_serve, args=(target, name, done), name=name,
                         daemon=True).start()
    return done


def _serve(target: Callable[[], object], name: str, done: Latch) -> None:
    parked: _Parked | None = None
    while True:
        _run(target, name, done)
        if parked is None:
            parked = _Parked()
        with _idle_lock:
            _idle.append(parked)
        if not parked.wake.acquire(True, IDLE_S):
            with _idle_lock:
                if parked in _idle:  # nobody took it: end this thread
                    _idle.remove(parked)
                    return
            parked.wake.acquire()  # taken just now: its work is on the way
        work = parked.work
        assert work is not None
        target, name, done = work
        parked.work = None


def _run(target: Callable[[], object], name: str, done: Latch) -> None:
    try:
        target()
    except BaseException:  # a target's failure is its own: the thread serves the next one
        import logging  # only now: a tracked run's first ``Run()`` would pay 3 ms for it

        logging.getLogger(__name__).exception("runyard background thread %s failed", name)
    finally:
        done.set()


def _forget_parked() -> None:
    global _idle, _idle_lock
    _idle, _idle_lock = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parked)
