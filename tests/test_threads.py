"""Kept background threads (``runyard.runtimes.threads``): reuse, failures, fork."""

from __future__ import annotations

import os
import threading

from runyard.runtimes import threads


def _ident_of_a_run() -> int:
    seen: list[int] = []
    assert threads.start(lambda: seen.append(threading.get_ident())).join(10)
    return seen[0]


def test_a_finished_thread_is_reused_by_the_next_start() -> None:
    first = _ident_of_a_run()
    for _ in range(50):  # the parked thread may not be parked yet right after its target ends
        if _ident_of_a_run() == first:
            return
    raise AssertionError("no start was served by the thread parked before it")


def test_a_failing_target_is_logged_and_its_thread_serves_again(caplog) -> None:  # type: ignore[no-untyped-def]
    def boom() -> None:
        raise ValueError("broken target")

    done = threads.start(boom, "boom")
    assert done.join(10) and done.is_set()
    results: list[int] = []
    assert threads.start(lambda: results.append(1)).join(10) and results == [1]
    assert any("boom" in r.getMessage() for r in caplog.records)


def test_a_forked_child_starts_threads_of_its_own() -> None:
    _ident_of_a_run()  # leaves a parked thread, which a child does not have
    pid = os.fork()
    if pid == 0:  # the child: a start must not be handed to the parent's parked thread
        ok = threads.start(lambda: None).join(10)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
