"""The ``process`` runtime: a pool of local worker processes, and detached launching.

Callables and their arguments are pickled with cloudpickle in the caller (so functions defined
in ``__main__`` travel too, and an unpicklable argument is refused at ``submit``), and run in
``spawn``-started workers that share nothing with the caller but ``sys.path``.

``spawn_detached`` starts a command in its own session, with no terminal and its output in a
file, so it outlives the process that started it: the engine's workflow supervisor is started
this way, so the caller may exit while the run goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from runyard.errors import RuntimeUnavailable
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
        self._pool = ProcessPoolExecutor(self.max_workers, mp_context=context)

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        assert self._pool is not None
        payload = pickled_call(fn, args, self.name)
        return self._pool.submit(call_pickled, payload)

    def _shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)


def spawn_detached(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached from this process (own session, no stdin); return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd=cwd,
                env=dict(os.environ if env is None else env),
            )
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    _reap_later(proc)
    return proc.pid


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the child in a daemon thread, so it never lingers as a zombie of ours."""
    import threading

    threading.Thread(target=proc.wait, name=f"runyard-reap-{proc.pid}", daemon=True).start()


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args…`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
