"""Kept background threads (``runyard.runtimes.threads``): reuse, failures, fork."""

from __future__ import annotations

import os
import threading

from runyard.runtimes import threads


def _ident_of_a_run() -> int:
    seen: list[int] = []
    assert threads.start(lambda: seen.append(threading.get_ident())).wait(10)
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
    assert done.wait(10) and done.is_set()
    results: list[int] = []
    assert threads.start(lambda: results.append(1)).wait(10) and results == [1]
    assert any("boom" in r.getMessage() for r in caplog.records)


def test_a_forked_child_starts_threads_of_its_own() -> None:
    _ident_of_a_run()  # leaves a parked thread, which a child does not have
    pid = os.fork()
    if pid == 0:  # the child: a start must not be handed to the parent's parked thread
        ok = threads.start(lambda: None).wait(10)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_latch_lets_every_waiter_through_once_set_and_stays_set() -> None:
    latch = threads.Latch()
    assert not latch.is_set() and not latch.wait(0.01) and not latch.wait(0)
    passed: list[bool] = []
    waiters = [threading.Thread(target=lambda: passed.append(latch.wait(10))) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    setters = [threading.Thread(target=latch.set) for _ in range(4)]  # several set at once
    for setter in setters:
        setter.start()
    for thread in waiters + setters:
        thread.join(10)
    assert passed == [True] * 8
    for _ in range(3):  # waiting never unsets it
        assert latch.is_set() and latch.wait(0) and latch.wait()
    latch.set()
    assert latch.is_set() and latch.wait(0.01)
