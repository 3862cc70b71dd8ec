"""Writing a workflow run's log without making task runs wait for the store.

The driver hands the recorder the text of each task run that has finished (a ``StepDoc``) or
the ``StepState`` of one whose record changed otherwise (a mutable record, written as it is
when written), log lines and catalog entries, and shares with it the task runs in flight; a
background thread writes them in batches every ``flush_interval``: the latest record of each
step only, all steps of a batch in one ``upsert_steps`` call. A task run in flight, and a
record that says ``running``, is written once it is ``HOLD_S`` old, so a task run that starts
and ends quickly is written once, finished. The same thread beats the run's heartbeat and
looks, now and then, for a cancel asked for from another process.
``close`` writes everything still queued; a write that keeps failing is raised there, so a run
is never reported finished with its log half written.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable

from runyard.engine.stepdoc import attempt_json, quote
from runyard.errors import RunyardError, StoreError
from runyard.model import Artifact, LogLine, Status, Step, step_from_dict
from runyard.runtimes import threads
from runyard.stores import RunStore
from runyard.stores.base import StepDoc

FLUSH_INTERVAL_S = 0.05
HOLD_S = 1.0  # long enough that calls queued on a busy cluster are written once, finished
CANCEL_CHECK_S = 0.25
HEARTBEAT_S = 5.0
_RUNNING = Status.RUNNING


# One attempt as the driver records it: the fields of ``Attempt`` in order, with the input
# and output digests already as JSON text: (number, status, started, ended, message,
# inputs_json, outputs_json).
RawAttempt = tuple[int, Status, float | None, float | None, str | None, str, str]


class StepState:
    """The run-log record of one task run, updated by the driver and written by the recorder.

    Each change replaces ``snapshot`` as a whole (one attribute store), so the recorder's
    thread always reads a consistent record without taking the driver's lock. Attempts are
    kept as plain tuples and the metadata as JSON text (``head``: task, hashes and inputs,
    made when the task run was prepared; then the keys added since, each ``,"key":value``):
    the recorder writes the record as text (``doc``) put together from these, with no
    ``Step`` or ``Attempt`` made. The attempt in flight is only ``flight``, its number and
    when it was submitted, until it ends.
    """

    __slots__ = ("attempt_inputs", "created", "flight", "head", "kind", "name", "snapshot")

    def __init__(self, name: str, kind: str, head: str, first: RawAttempt | None = None,
                 attempt_inputs: str = "{}") -> None:
        """A running record; with its ``first`` attempt (made running) when given.
        ``attempt_inputs``: the inputs of each attempt, as JSON text."""
        self.name, self.kind, self.head = name, kind, head
        self.attempt_inputs = attempt_inputs
        self.created = created = time.time()
        self.flight: tuple[int, float] | None = None  # (attempt number, when submitted)
        # (status, attempts, metadata keys added since the head as JSON text, when changed)
        self.snapshot: tuple[Status, tuple[RawAttempt, ...], str, float] = (
            _RUNNING, () if first is None else (first,), "", created)

    def update(self, status: Status, attempt: RawAttempt | None = None, extra: str = ""
               ) -> None:
        """Record ``attempt`` (replacing the one of the same number) and the step's status;
        ``extra``: metadata keys to add, as JSON text (``,"output":{...}``)."""
        self.snapshot = self._changed(status, attempt, extra)

    def _changed(self, status: Status, attempt: RawAttempt | None, extra: str
                 ) -> tuple[Status, tuple[RawAttempt, ...], str, float]:
        _, attempts, added, _ = self.snapshot
        if attempt is not None:
            if attempts and attempts[-1][0] == attempt[0]:
                attempts = (*attempts[:-1], attempt)
            else:
                attempts = (*attempts, attempt)
        return (status, attempts, added + extra if extra else added, time.time())

    def doc(self) -> StepDoc:
        """The record as ``upsert_step_docs`` takes it: the JSON of ``step_to_dict``, with
        the attempt in flight, if any, as a running one."""
        status, attempts, added, _ = self.snapshot
        flight = self.flight
        if flight is not None and status is _RUNNING and (
                not attempts or attempts[-1][0] < flight[0]):
            attempts = (*attempts, (flight[0], _RUNNING, flight[1], None, None,
                                    self.attempt_inputs, "{}"))
        return self._text(status, attempts, added)

    def finished_doc(self, status: Status, attempt: RawAttempt, extra: str) -> StepDoc:
        """``doc`` after ``update(status, attempt, extra)``, for a task run that has ended
        for good (nothing is kept: the record is not read again)."""
        return self._text(*self._changed(status, attempt, extra)[:3])

    def _text(self, status: Status, attempts: tuple[RawAttempt, ...], added: str) -> StepDoc:
        name, created = self.name, self.created
        shown = (attempt_json(attempts[0]) if len(attempts) == 1
                 else ",".join([attempt_json(a) for a in attempts]))
        return name, created, (  # one f-string: the text is put together once
            f'{{"name":{quote(name)},"status":"{status._value_}","kind":{quote(self.kind)},'
            f'"created":{created!r},"attempts":[{shown}],"metadata":{self.head}{added}}}}}')

    def step(self) -> Step:
        return step_from_dict(json.loads(self.doc()[2]))


class Recorder:
    def __init__(self, store: RunStore, run_id: str, *, heartbeat: float = HEARTBEAT_S,
                 on_cancel: Callable[[], None] | None = None,
                 then: Callable[[], None] | None = None) -> None:
        """``then``: called on the recorder's thread once ``stop`` is asked for (it may call
        ``close``): so the thread that writes the log also finishes the run, with no thread
        of its own to start and hand over to."""
        self.store, self.run_id = store, run_id
        self.heartbeat, self.on_cancel, self.then = heartbeat, on_cancel, then
        self._steps: deque[StepState | StepDoc] = deque()
        # Queue a record to be written: a finished task run's text, or a ``StepState`` (as it
        # is when written). A deque's append: safe from any thread without a lock.
        self.put_step: Callable[[StepState | StepDoc], None] = self._steps.append
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
        now = time.monotonic()
        beat_due, cancel_due = now + self.heartbeat, now + CANCEL_CHECK_S
        while not self._stop.is_set():
            self._wake.wait(FLUSH_INTERVAL_S)
            if self._stop.is_set():
                break  # close() writes the rest
            self._flush()
            now = time.monotonic()
            if now >= beat_due:
                beat_due = now + self.heartbeat
                self._quietly(lambda: self.store.update_run(self.run_id, heartbeat=time.time()))
            if self.on_cancel is not None and now >= cancel_due:
                cancel_due = now + CANCEL_CHECK_S
                self._quietly(self._check_cancel)
        if self.then is not None:
            self.then()

    def _check_cancel(self) -> None:
        if self.store.get_run(self.run_id).status is Status.CANCELING and self.on_cancel:
            self.on_cancel()

    def _take(self, final: bool
              ) -> tuple[list[StepState | StepDoc], list[LogLine], list[Artifact]]:
        """What is due now; ``running`` records younger than ``HOLD_S`` stay queued."""
        queue = self._steps
        latest: dict[str, StepState | StepDoc] = {}
        while queue:  # the only consumer: popleft on a non-empty deque cannot fail
            item = queue.popleft()
            if isinstance(item, tuple):  # a finished task run: nothing comes after it
                latest[item[0]] = item
            elif not isinstance(latest.get(item.name), tuple):
                latest[item.name] = item
        with self._lock:
            logs, self._logs = self._logs, []
            artifacts, self._artifacts = self._artifacts, []
        if final:
            return list(latest.values()), logs, artifacts
        due: list[StepState | StepDoc] = []
        young = time.time() - HOLD_S
        for item in latest.values():
            if isinstance(item, StepState):
                status, _, _, changed = item.snapshot
                if status is _RUNNING and changed > young:
                    queue.append(item)  # held back: looked at again next time
                    continue
            due.append(item)
        return due, logs, artifacts

    def _flying(self) -> list[StepDoc]:
        """The records of the task runs whose attempt in flight is ``HOLD_S`` old and not
        written yet."""
        if not self.in_flight:
            return []
        old, flown, docs = time.time() - HOLD_S, self._flown, []
        for state in list(self.in_flight.values()):  # (one step under the GIL)
            flight = state.flight
            if flight is None or flight[1] > old or flown.get(state.name) == flight[0]:
                continue
            flown[state.name] = flight[0]
            docs.append(state.doc())
        return docs

    def _flush(self, final: bool = False) -> None:
        flying = self._flying()  # before the queue: a record queued since then comes after
        items, logs, artifacts = self._take(final)
        if not (items or logs or artifacts or flying):
            return
        try:
            docs = [item if isinstance(item, tuple) else item.doc() for item in items]
            if flying:
                docs[:0] = flying  # (upsert_step_docs: the last of a name wins)
            if docs:
                self.store.upsert_step_docs(self.run_id, docs)
            if logs:
                self.store.append_logs(self.run_id, logs)
            for artifact in artifacts:
                self.store.add_artifact(self.run_id, artifact)
            self._error = None
        except Exception as exc:  # kept, retried, and raised at close
            self._error = exc if isinstance(exc, RunyardError) else StoreError(
                f"writing the run log of {self.run_id} failed: {type(exc).__name__}: {exc}")
            for name, _, _ in flying:
                self._flown.pop(name, None)  # written again next time
            self._requeue(items, logs, artifacts)

    def _requeue(self, items: list[StepState | StepDoc], logs: list[LogLine],
                 artifacts: list[Artifact]) -> None:
        self._steps.extend(items)
        with self._lock:
            self._logs = logs + self._logs
            self._artifacts = artifacts + self._artifacts

    def _quietly(self, action: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):  # a missed heartbeat or check is retried
            action()
