"""The ``process`` runtime: a pool of local worker processes.

Callables and their arguments are pickled with cloudpickle in the caller (so functions defined
in ``__main__`` travel too, and an unpicklable argument is refused at ``submit``), and run in
``spawn``-started workers that share nothing with the caller but ``sys.path``.

The workers end with their owner, however it ends (``kill -9`` included), and take every
process their tasks started with them (``runyard.processes.tree.guard_owner``): nothing of a
run keeps working, or holding resources, after the process that owns the run is gone.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from runyard.processes.tree import guard_owner
from runyard.runtimes.base import RuntimeBase, call_pickled, pickled_call

T = TypeVar("T")


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class ProcessRuntime(RuntimeBase):
    """A pool of ``max_workers`` local processes (default: one per CPU)."""

    name = "process"
    remote = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.max_workers, mp_context=context,
                                         initializer=guard_owner, initargs=(os.getpid(),))

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        assert self._pool is not None
        payload = pickled_call(fn, args, self.name)
        return self._pool.submit(call_pickled, payload)

    def _shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
