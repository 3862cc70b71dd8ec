"""Writing a workflow run's log without making task runs wait for the store.

The driver hands the recorder the ``Step`` of each task run that has finished, or the
``StepState`` of one whose record changed otherwise (a mutable record, written as it is when
written), log lines and catalog entries, and shares with it the task runs in flight; a
background thread writes them in batches every ``flush_interval``: the latest record of each
step only, all steps of a batch in one ``upsert_steps`` call (the store encodes them). A task
run in flight, and a record that says ``running``, is written once it is ``HOLD_S`` old, so a
task run that starts and ends quickly is written once, finished. The same thread beats the
run's heartbeat and looks, now and then, for a cancel asked for from another process.
``close`` writes everything still queued; a write that keeps failing is raised there, so a run
is never reported finished with its log half written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from runyard.core.lease import Lease
from runyard.errors import RunyardError, StoreError
from runyard.model import Artifact, Attempt, LogLine, Status, Step
from runyard.runtimes import threads
from runyard.stores import RunStore

FLUSH_INTERVAL_S = 0.05
HOLD_S = 1.0  # long enough that calls queued on a busy cluster are written once, finished
HEARTBEAT_S = 5.0
_RUNNING = Status.RUNNING
_NOTHING: dict[str, Any] = {}  # no metadata added since the head (never written to)


class StepState:
    """The run-log record of one task run, updated by the driver and written by the recorder.

    Each change replaces ``snapshot`` as a whole (one attribute store), so the recorder's
    thread always reads a consistent record without taking the driver's lock. The metadata is
    kept as its ``head`` (task, hashes and inputs, made when the task run was prepared) and
    the keys added since; ``step`` makes the ``Step`` the store is given. The attempt in flight
    is only ``flight``, its number and when it was submitted, until it ends.
    """

    __slots__ = ("attempt_inputs", "created", "flight", "head", "kind", "name", "snapshot")

    def __init__(self, name: str, kind: str, head: dict[str, Any],
                 first: Attempt | None = None, attempt_inputs: dict[str, Any] | None = None
                 ) -> None:
        """A running record; with its ``first`` attempt (made running) when given.
        ``attempt_inputs``: the inputs of each attempt (the arguments' digests)."""
        self.name, self.kind, self.head = name, kind, head
        self.attempt_inputs = _NOTHING if attempt_inputs is None else attempt_inputs
        self.created = created = time.time()
        self.flight: tuple[int, float] | None = None  # (attempt number, when submitted)
        # (status, attempts, metadata keys added since the head, when changed)
        self.snapshot: tuple[Status, tuple[Attempt, ...], dict[str, Any], float] = (
            _RUNNING, () if first is None else (first,), _NOTHING, created)

    def update(self, status: Status, attempt: Attempt | None = None,
               extra: dict[str, Any] | None = None) -> None:
        """Record ``attempt`` (replacing the one of the same number) and the step's status;
        ``extra``: metadata keys to add."""
        self.snapshot = self._changed(status, attempt, extra)

    def _changed(self, status: Status, attempt: Attempt | None, extra: dict[str, Any] | None
                 ) -> tuple[Status, tuple[Attempt, ...], dict[str, Any], float]:
        _, attempts, added, _ = self.snapshot
        if attempt is not None:
            if attempts and attempts[-1].number == attempt.number:
                attempts = (*attempts[:-1], attempt)
            else:
                attempts = (*attempts, attempt)
        return (status, attempts, {**added, **extra} if extra else added, time.time())

    def step(self) -> Step:
        """The record as a ``Step``, with the attempt in flight, if any, as a running one."""
        status, attempts, added, _ = self.snapshot
        flight = self.flight
        if flight is not None and status is _RUNNING and (
                not attempts or attempts[-1].number < flight[0]):
            attempts = (*attempts, Attempt(flight[0], _RUNNING, flight[1], None, None,
                                           self.attempt_inputs, _NOTHING))
        return self._made(status, attempts, added)

    def finished_step(self, status: Status, attempt: Attempt, extra: dict[str, Any]) -> Step:
        """``step`` after ``update(status, attempt, extra)``, for a task run that has ended
        for good (nothing is kept: the record is not read again)."""
        return self._made(*self._changed(status, attempt, extra)[:3])

    def _made(self, status: Status, attempts: tuple[Attempt, ...], added: dict[str, Any]
              ) -> Step:
        metadata = {**self.head, **added} if added else self.head
        return Step(self.name, status, self.kind, self.created, attempts, metadata)


class Recorder:
    def __init__(self, store: RunStore, run_id: str, *, lease: Lease | None = None,
                 on_cancel: Callable[[], None] | None = None,
                 then: Callable[[], None] | None = None) -> None:
        """``lease``: the run's, ticked by the recorder's thread (heartbeat, cancel requests,
        answered by ``on_cancel``). ``then``: called on the recorder's thread once ``stop`` is
        asked for (it may call ``close``): so the thread that writes the log also finishes the
        run, with no thread of its own to start and hand over to."""
        self.store, self.run_id = store, run_id
        self.lease, self.on_cancel, self.then = lease, on_cancel, then
        self._steps: deque[StepState | Step] = deque()
        # Queue a record to be written: a finished task run's ``Step``, or a ``StepState`` (as
        # it is when written). A deque's append is thread-safe (documented), GIL or none.
        self.put_step: Callable[[StepState | Step], None] = self._steps.append
        # The task runs in flight, by name (the driver's, read here): each written once its
        # attempt is ``HOLD_S`` old (``_flying``), which attempt noted in ``_flown``.
        self.in_flight: dict[str, StepState] = {}
        self._flown: dict[str, int] = {}
        self._logs: list[LogLine] = []
        self._artifacts: list[Artifact] = []
        self._lock = threading.Lock()
        self._wake = threads.Latch()
        self._stop = threads.Latch()
        self._error: RunyardError | None = None
        self._done: threads.Latch | None = None  # set when the thread has ended its loop
        self._ident: int | None = None  # the thread's, while it runs the loop

    def start(self) -> Recorder:
        self._done = threads.start(self._loop, f"runyard-recorder-{self.run_id}")
        return self

    def put_logs(self, lines: list[LogLine]) -> None:
        if lines:
            with self._lock:
                self._logs.extend(lines)

    def put_artifact(self, artifact: Artifact) -> None:
        with self._lock:
            self._artifacts.append(artifact)

    def stop(self) -> None:
        """Ask the thread to stop (and then run ``then``); returns at once."""
        self._stop.set()
        self._wake.set()

    def close(self) -> None:
        """Write everything queued and stop; raise the last write error if one remains."""
        self.stop()
        if self._done is not None and threading.get_ident() != self._ident:
            self._done.wait()
        self._flush(final=True)
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        self._ident = threading.get_ident()
        lease = self.lease
        while not self._stop.is_set():
            self._wake.wait(FLUSH_INTERVAL_S)
            if self._stop.is_set():
                break  # close() writes the rest
            self._flush()
            if lease is not None and time.monotonic() >= lease.next_due():
                self._quietly(self._tick)
        if self.then is not None:
            self.then()

    def _tick(self) -> None:
        assert self.lease is not None
        if self.lease.tick() and self.on_cancel is not None:
            self.on_cancel()

    def _take(self, final: bool
              ) -> tuple[list[StepState | Step], list[LogLine], list[Artifact]]:
        """What is due now; ``running`` records younger than ``HOLD_S`` stay queued."""
        queue = self._steps
        latest: dict[str, StepState | Step] = {}
        while queue:  # the only consumer: popleft on a non-empty deque cannot fail
            item = queue.popleft()
            # a finished task run's Step: nothing comes after it, so it is kept
            if item.__class__ is Step or latest.get(item.name).__class__ is not Step:
                latest[item.name] = item
        with self._lock:
            logs, self._logs = self._logs, []
            artifacts, self._artifacts = self._artifacts, []
        if final:
            return list(latest.values()), logs, artifacts
        due: list[StepState | Step] = []
        young = time.time() - HOLD_S
        for item in latest.values():
            if isinstance(item, StepState):
                status, _, _, changed = item.snapshot
                if status is _RUNNING and changed > young:
                    queue.append(item)  # held back: looked at again next time
                    continue
            due.append(item)
        return due, logs, artifacts

    def _flying(self) -> list[Step]:
        """The records of the task runs whose attempt in flight is ``HOLD_S`` old and not
        written yet."""
        if not self.in_flight:
            return []
        old, flown, docs = time.time() - HOLD_S, self._flown, []
        # ``dict.copy`` is one operation on the dict: atomic under the GIL, and under a
        # free-threaded build's per-object lock, while the driver adds and removes entries
        for state in self.in_flight.copy().values():
            flight = state.flight
            if flight is None or flight[1] > old or flown.get(state.name) == flight[0]:
                continue
            flown[state.name] = flight[0]
            docs.append(state.step())
        return docs

    def _flush(self, final: bool = False) -> None:
        flying = self._flying()  # before the queue: a record queued since then comes after
        items, logs, artifacts = self._take(final)
        if not (items or logs or artifacts or flying):
            return
        try:
            steps = [item if isinstance(item, Step) else item.step() for item in items]
            if flying:
                steps[:0] = flying  # (upsert_steps: the last of a name wins)
            if steps:
                self.store.upsert_steps(self.run_id, steps)
            if logs:
                self.store.append_logs(self.run_id, logs)
            for artifact in artifacts:
                self.store.add_artifact(self.run_id, artifact)
            self._error = None
        except Exception as exc:  # kept, retried, and raised at close
            self._error = exc if isinstance(exc, RunyardError) else StoreError(
                f"writing the run log of {self.run_id} failed: {type(exc).__name__}: {exc}")
            for step in flying:
                self._flown.pop(step.name, None)  # written again next time
            self._requeue(items, logs, artifacts)

    def _requeue(self, items: list[StepState | Step], logs: list[LogLine],
                 artifacts: list[Artifact]) -> None:
        self._steps.extend(items)
        with self._lock:
            self._logs = logs + self._logs
            self._artifacts = artifacts + self._artifacts

    def _quietly(self, action: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):  # a missed heartbeat or check is retried
            action()
