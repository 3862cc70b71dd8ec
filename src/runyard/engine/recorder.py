"""Writing a workflow run's log without making task runs wait for the store.

The driver hands the recorder step records, log lines and catalog entries; a background thread
writes them in batches every ``flush_interval``: the latest record of each step only (a task run
that starts and ends between two flushes is written once), all steps of a batch in one
``upsert_steps`` call. The same thread beats the run's heartbeat and looks, now and then, for a
cancel asked for from another process. ``close`` writes everything still queued; a write that
keeps failing is raised there, so a run is never reported finished with its log half written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from runyard.errors import RunyardError, StoreError
from runyard.model import Artifact, LogLine, Status, Step
from runyard.stores import RunStore

FLUSH_INTERVAL_S = 0.05
CANCEL_CHECK_S = 0.25
HEARTBEAT_S = 5.0


class Recorder:
    def __init__(self, store: RunStore, run_id: str, *, heartbeat: float = HEARTBEAT_S,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self.store, self.run_id = store, run_id
        self.heartbeat, self.on_cancel = heartbeat, on_cancel
        self._steps: dict[str, Step] = {}
        self._logs: list[LogLine] = []
        self._artifacts: list[Artifact] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: RunyardError | None = None
        self._thread = threading.Thread(target=self._loop, name=f"runyard-recorder-{run_id}",
                                        daemon=True)

    def start(self) -> Recorder:
        self._thread.start()
        return self

    def put_step(self, step: Step) -> None:
        with self._lock:
            self._steps[step.name] = step

    def put_logs(self, lines: list[LogLine]) -> None:
        if lines:
            with self._lock:
                self._logs.extend(lines)

    def put_artifact(self, artifact: Artifact) -> None:
        with self._lock:
            self._artifacts.append(artifact)

    def close(self) -> None:
        """Write everything queued and stop; raise the last write error if one remains."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self._flush()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        now = time.monotonic()
        beat_due, cancel_due = now + self.heartbeat, now + CANCEL_CHECK_S
        while not self._stop.is_set():
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            self._flush()
            now = time.monotonic()
            if now >= beat_due:
                beat_due = now + self.heartbeat
                self._quietly(lambda: self.store.update_run(self.run_id, heartbeat=time.time()))
            if self.on_cancel is not None and now >= cancel_due:
                cancel_due = now + CANCEL_CHECK_S
                self._quietly(self._check_cancel)

    def _check_cancel(self) -> None:
        if self.store.get_run(self.run_id).status is Status.CANCELING and self.on_cancel:
            self.on_cancel()

    def _flush(self) -> None:
        with self._lock:
            steps, self._steps = self._steps, {}
            logs, self._logs = self._logs, []
            artifacts, self._artifacts = self._artifacts, []
        if not (steps or logs or artifacts):
            return
        try:
            if steps:
                self.store.upsert_steps(self.run_id, list(steps.values()))
            if logs:
                self.store.append_logs(self.run_id, logs)
            for artifact in artifacts:
                self.store.add_artifact(self.run_id, artifact)
            self._error = None
        except Exception as exc:  # kept, retried, and raised at close
            self._error = exc if isinstance(exc, RunyardError) else StoreError(
                f"writing the run log of {self.run_id} failed: {type(exc).__name__}: {exc}")
            self._requeue(steps, logs, artifacts)

    def _requeue(self, steps: dict[str, Step], logs: list[LogLine],
                 artifacts: list[Artifact]) -> None:
        with self._lock:
            self._steps = {**steps, **self._steps}
            self._logs = logs + self._logs
            self._artifacts = artifacts + self._artifacts

    def _quietly(self, action: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):  # a missed heartbeat or check is retried
            action()
