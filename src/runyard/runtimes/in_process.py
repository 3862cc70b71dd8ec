"""The ``in_process`` runtime: callables run on a thread pool in the caller's process.

The pool is a small one of its own, made for many short callables:

- Threads start on demand, up to ``max_workers``; a submission claims an idle thread (as
  ``ThreadPoolExecutor`` does) with one atomic list operation instead of a semaphore, so
  submitting and finishing never queue on a lock.
- A callable submitted by a future's done-callback while that future is being completed on a
  pool thread (a workflow's next task run, say) is run next by that same thread, right after
  the callbacks return: a chain of callables runs without handing work between threads.
  Only the first such submission stays; the rest go to the shared queue. (So a callback must
  not wait for the result of what it submits: that call runs once the callback has returned.)
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from queue import SimpleQueue
from typing import Any, TypeVar

from runyard.runtimes import threads
from runyard.runtimes.base import Answer, RuntimeBase, settle

T = TypeVar("T")
_Done = Callable[[Any, BaseException | None], None]
_Item = tuple[Answer, Callable[..., Any], tuple[Any, ...]]  # (how its end is told, fn, args)
_local = threading.local()


@functools.cache  # os.cpu_count reads /sys each time: tens of microseconds a run
def default_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class _Here:
    """What a pool thread is at: its pool, whether it is reporting an end (running the
    callbacks), and the callable they submitted to it (run next, by this thread)."""

    __slots__ = ("next", "pool", "reporting")

    def __init__(self) -> None:
        self.pool: _Pool | None = None
        self.reporting = False
        self.next: _Item | None = None


class _Pool:
    def __init__(self, max_workers: int, prefix: str) -> None:
        self.max_workers, self.prefix = max_workers, prefix
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._idle: list[None] = []  # one entry per idle, unclaimed thread
        self._threads: list[threads.Latch] = []  # one per thread started for this pool
        self._spawn_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...],
               done: _Done | None = None) -> Future[T] | None:
        """Queue ``fn(*args)``: answered by a future, or (given ``done``) by calling ``done``."""
        future: Future[T] | None = None
        answer: Answer
        if done is None:
            future = answer = Future()
        else:
            answer = done
        item: _Item = (answer, fn, args)
        here: _Here | None = getattr(_local, "here", None)
        if here is not None and here.reporting and here.next is None and here.pool is self:
            here.next = item  # this thread runs it as soon as its callbacks return
            return future
        self._queue.put(item)
        try:
            self._idle.pop()  # claim an idle thread
        except IndexError:
            self._spawn()
        return future

    def _spawn(self) -> None:
        """Put one more thread to work (a kept one when there is one: ``threads.start``)."""
        with self._spawn_lock:
            if len(self._threads) >= self.max_workers or self._closed:
                return
            self._threads.append(threads.start(self._work,
                                               f"{self.prefix}_{len(self._threads)}"))

    def _work(self) -> None:
        here: _Here | None = getattr(_local, "here", None)
        if here is None:
            here = _local.here = _Here()
        here.pool, here.next, here.reporting = self, None, False  # (a kept thread's last use)
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    self._queue.put(None)  # wake the next thread too
                    return
                while item is not None:
                    item = self._run(item, here)
                self._idle.append(None)
        finally:
            here.pool = None  # the thread may go on to serve another pool

    @staticmethod
    def _run(item: _Item, here: _Here) -> _Item | None:
        """Run ``item``; the callable its callbacks submitted to this thread, if any."""
        answer, fn, args = item
        if isinstance(answer, Future) and not answer.set_running_or_notify_cancel():
            return None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed on, as ThreadPoolExecutor does
            here.reporting = True
            settle(answer, None, exc, "in_process")
        else:
            here.reporting = True
            settle(answer, result, None, "in_process")
        finally:
            here.reporting = False
        after, here.next = here.next, None
        return after

    def shutdown(self, wait: bool, cancel: bool) -> None:
        with self._spawn_lock:
            self._closed = True
            started = list(self._threads)
        if cancel:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    continue
                if isinstance(item[0], Future):
                    item[0].cancel()
                else:
                    item[0](None, CancelledError())
        self._queue.put(None)
        if wait:
            for done in started:
                done.wait()


class InProcessRuntime(RuntimeBase):
    """Threads of this process; values are passed as they are, never pickled."""

    name = "in_process"
    remote = False

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or default_workers()
        self._pool: _Pool | None = None

    def _start(self) -> None:
        self._pool = _Pool(self.max_workers, "runyard-task")

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        assert self._pool is not None
        future = self._pool.submit(fn, args)
        assert future is not None
        return future

    def submit_then(self, fn: Callable[..., T], args: tuple[Any, ...],
                    done: Callable[[T | None, BaseException | None], None]) -> None:
        self._check_started()
        assert self._pool is not None
        self._pool.submit(fn, args, done)

    def _shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel=not wait)
