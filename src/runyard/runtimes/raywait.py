"""Answering the calls a ``ray`` runtime submitted, as they finish: ``Waiter``.

One thread per runtime waits on all pending calls at once with ``ray.wait`` and fetches the
finished ones with one ``ray.get``: a call's end is answered by completing its future, or by
calling its done-callback (``submit_then``), on this thread.

Why not one ``ObjectRef.future()`` per call: Ray then deserialises every result on its own
thread, one by one, and hands each over to Python through a callback; on a fan-out of small
tasks that cost about as much driver time per call as Ray's own submission (measured: a
500-task fan-out ran 1.3 to 1.5 times as long as raw Ray that way, 1.0 to 1.2 times this way).

A round waits until every pending call has finished or ``round_s(pending)`` has passed, so a
lone call (a chain of tasks) is answered as soon as it ends (fetched by one ``ray.get``, with
no ``ray.wait`` before it), and many calls are answered in batches. A round looks at every
pending call (about a microsecond each), so the longest wait grows with the number pending
(``PER_CALL_S`` each, from ``MIN_ROUND_S`` up to ``MAX_ROUND_S``): the waiting costs a few
percent of a core however many calls are pending, and a call that ends while slower ones
still run is answered within one round.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections import deque
from typing import Any

from runyard.runtimes import threads
from runyard.runtimes.base import Answer, settle

MIN_ROUND_S = 0.01
MAX_ROUND_S = 0.5
PER_CALL_S = 20e-6



def round_s(pending: int) -> float:
    """The longest a round waits with ``pending`` calls in flight."""
    return min(MAX_ROUND_S, max(MIN_ROUND_S, pending * PER_CALL_S))


class Waiter:
    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._timeout = ray.exceptions.GetTimeoutError
        self._added: deque[tuple[Any, Answer]] = deque()  # (ObjectRef, answer), from add
        self._idle = threading.Lock()  # held while there is nothing to wait for
        self._idle.acquire()
        self._sleeping = False
        self._stopping = False
        self.done = threads.start(self._loop, "runyard-ray-waiter")

    def add(self, ref: Any, answer: Answer) -> None:
        """Answer ``answer`` once the call behind ``ref`` has finished."""
        self._added.append((ref, answer))
        self._wake()

    def stop(self) -> None:
        """End the thread once the calls still pending have been answered."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        if self._sleeping:
            self._sleeping = False
            with contextlib.suppress(RuntimeError):  # woken by another thread just now
                self._idle.release()

    def _loop(self) -> None:
        pending: dict[Any, Answer] = {}
        added = self._added
        while True:
            while added:
                ref, answer = added.popleft()
                pending[ref] = answer
            if not pending:
                if self._stopping:
                    return
                self._sleeping = True
                if not added and not self._stopping:  # (an add between the checks wakes it)
                    self._idle.acquire()
                self._sleeping = False
                continue
            if len(pending) == 1:
                self._answer_one(pending)
                continue
            refs = list(pending)
            try:
                ready, _ = self._ray.wait(refs, num_returns=len(refs),
                                          timeout=round_s(len(refs)), fetch_local=True)
            except Exception as exc:  # Ray itself failed (disconnected, shut down): every
                for answer in pending.values():  # pending call fails, none is left waiting
                    settle(answer, None, exc, "ray")
                pending.clear()
                continue
            if ready:
                self._answer_all(ready, pending)

    def _answer_one(self, pending: dict[Any, Answer]) -> None:
        """The one pending call (a chain's): fetched as soon as it ends, with one ``ray.get``
        and no ``ray.wait`` before it."""
        ref = next(iter(pending))
        try:
            data = self._ray.get(ref, timeout=MIN_ROUND_S)
        except self._timeout:
            return
        except BaseException as exc:  # the call's (or Ray's) error, handed on
            settle(pending.pop(ref), None, exc, "ray")
            return
        answer = pending.pop(ref)
        try:
            result = pickle.loads(data)
        except BaseException as exc:
            settle(answer, None, exc, "ray")
        else:
            settle(answer, result, None, "ray")

    def _answer_all(self, ready: list[Any], pending: dict[Any, Answer]) -> None:
        try:
            results: list[Any] = self._ray.get(ready)
        except Exception:  # one of them failed in Ray itself: each on its own below
            results = [None] * len(ready)
            batch_failed = True
        else:
            batch_failed = False
        for ref, data in zip(ready, results, strict=True):
            answer = pending.pop(ref)
            try:
                result = pickle.loads(self._ray.get(ref) if batch_failed else data)
            except BaseException as exc:  # the call's (or Ray's) error, handed on
                settle(answer, None, exc, "ray")
            else:
                settle(answer, result, None, "ray")
