"""The ``in_process`` runtime: callables run on a thread pool in the caller's process."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from runyard.runtimes.base import RuntimeBase

T = TypeVar("T")


def default_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class InProcessRuntime(RuntimeBase):
    """Threads of this process; values are passed as they are, never pickled."""

    name = "in_process"
    remote = False

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or default_workers()
        self._pool: ThreadPoolExecutor | None = None

    def _start(self) -> None:
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="runyard-task")

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        assert self._pool is not None
        return self._pool.submit(fn, *args)

    def _shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
