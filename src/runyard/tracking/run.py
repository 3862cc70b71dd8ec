"""``Run``: track a run from Python — metrics, events, files, tags, metadata, liveness.

    with Run() as run:
        run.init(name="scan-1", tags=["scan"], metadata={"lr": 0.1})
        for step in range(100):
            run.log_metrics({"loss": loss(step)}, step=step)
        run.save_file("results.csv", category="output")

``log_metrics`` and ``log_event`` only check their input and append to a queue; a background
thread per run writes batches to the store, beats the heartbeat and samples resources. A full
queue makes the caller wait (nothing is dropped); ``close`` writes everything first and raises
``DataLost``, counting it, if anything could not be written. Leaving a ``with`` block closes
the run: ``succeeded`` (also on ``sys.exit(0)``), or ``failed`` with the exception as the
reason (re-raised; ``sys.exit(3)`` is ``SystemExit: 3``), or ``canceled`` on
``KeyboardInterrupt``. A run still open when the interpreter exits is closed then; SIGTERM
closes it ``canceled``, and a forked child cannot log to it (``runyard.tracking.process``).
With ``offline=True`` (or ``RUNYARD_OFFLINE=1``) everything goes to the local spool
(``runyard.tracking.spool``) for ``runyard sync``.
"""

from __future__ import annotations

import os
import sys
import time as _time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from types import TracebackType
    from typing import Any

    from runyard.core import liveness
    from runyard.core.identity import code_identity, environment
    from runyard.core.runs import create_run
    from runyard.errors import DataLost, RunyardError, TrackingError, ValidationError
    from runyard.model import Artifact, Event, Kind, RunRecord, Stage, Status
    from runyard.model import validate as check
    from runyard.stores import RunStore
    from runyard.tracking import checks, lifecycle
    from runyard.tracking.connect import Target, target
    from runyard.tracking.flusher import WIDTH, MetricField
    from runyard.tracking.process import Cause
    from runyard.tracking.resources import Resources
    from runyard.tracking.session import Session, Timing
    from runyard.tracking.spool import offline_from_env

_now = _time.time
TERM_PATIENCE = 8.0  # seconds SIGTERM waits for queued values to be written
MAX_STEP = 2**63 - 1  # runyard.model.validate.MAX_STEP, here so that logging imports nothing
_FLOAT = frozenset({float})  # values queued as they are; anything else is checked
_loaded = False


def _load_machinery() -> None:
    """Bind the names above, once, when the first ``Run`` is made.

    Only the standard library is imported with this module, so ``from runyard import Run``
    stays cheap (issue 16: 25 ms over bare Python instead of 53 ms on the machine where the
    figures in docs/benchmarks.md were taken): the model, the stores and the writer come with
    the first ``Run()``, before anything is logged, so ``log_metrics`` never imports."""
    global _loaded, liveness, code_identity, environment, create_run, DataLost, RunyardError
    global TrackingError, ValidationError, Artifact, Event, Kind, Stage, Status, check, checks
    global lifecycle, target, WIDTH, Resources, Session, Timing, offline_from_env, Path
    from pathlib import Path

    from runyard.core import liveness
    from runyard.core.identity import code_identity, environment
    from runyard.core.runs import create_run
    from runyard.errors import DataLost, RunyardError, TrackingError, ValidationError
    from runyard.model import Artifact, Event, Kind, Stage, Status
    from runyard.model import validate as check
    from runyard.tracking import checks, lifecycle
    from runyard.tracking.connect import target
    from runyard.tracking.flusher import WIDTH
    from runyard.tracking.resources import Resources
    from runyard.tracking.session import Session, Timing
    from runyard.tracking.spool import offline_from_env

    _loaded = True


class Run:
    """One tracked run. Configure it here; open it with ``init`` or ``reconnect``.

    ``store`` is a store URL or a ``RunStore`` (default: the configured store).
    ``heartbeat_interval`` and ``resources_interval`` are seconds, or ``None`` to turn the
    heartbeat or the ``system.*`` metrics off; ``queue_size`` is how many metric values (and,
    apart, events) may wait to be written before the caller waits; ``capture_code`` records
    the git identity of the working directory.
    """

    def __init__(
        self,
        store: str | RunStore | None = None,
        *,
        heartbeat_interval: float | None = 10.0,
        resources_interval: float | None = 10.0,
        flush_interval: float = 0.5,
        queue_size: int = 100_000,
        gpu: bool = True,
        capture_code: bool = True,
    ) -> None:
        if not _loaded:
            _load_machinery()
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValidationError(f"queue_size must be a positive integer, not {queue_size!r}")
        self._timing = Timing(
            flush_interval=checks.interval(flush_interval, "flush_interval") or 0.5,
            heartbeat_interval=checks.interval(heartbeat_interval, "heartbeat_interval"),
            resources_interval=checks.interval(resources_interval, "resources_interval"),
            capacity=queue_size,
        )
        self._store_arg, self._gpu, self._capture_code = store, gpu, capture_code
        self._cap = queue_size
        self._cap_entries = queue_size * WIDTH  # of the flat metric queue
        self._metrics: list[MetricField] | None = None  # the open run's queues; None if not open
        self._events: deque[Event] | None = None
        self._names: set[str] = set()
        self._state = "new"  # new -> open | queued -> closed; open -> forked in a forked child
        self._record: RunRecord | None = None
        self._target: Target | None = None
        self._session: Session | None = None
        self._pid = os.getpid()

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._opened().id

    @property
    def name(self) -> str:
        return self._opened().name

    @property
    def folder(self) -> str:
        return self._opened().folder

    @property
    def offline(self) -> bool:
        return self._target is not None and self._target.offline

    @property
    def store(self) -> RunStore:
        """The store this run writes to (the offline spool for an offline run)."""
        if self._target is None:
            raise self._not_open("use its store")
        return self._target.store

    def __repr__(self) -> str:
        if self._record is None:
            return f"<runyard.Run {self._state}>"
        return f"<runyard.Run {self._record.name} ({self._record.id}) {self._state}>"

    # -- opening --------------------------------------------------------------------------------
    def init(
        self,
        name: str | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        description: str | None = None,
        folder: str = "/",
        status: str | Status = "running",
        offline: bool | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> Run:
        """Create the run (named ``adjective-noun`` unless ``name`` is given) and open it.

        ``status="created"`` registers a run queued elsewhere: nothing is logged until a later
        ``Run().reconnect(...)`` marks it running. ``offline=True`` (default: whether
        ``RUNYARD_OFFLINE`` is set) writes to the local spool instead of the store, for
        ``runyard sync`` to upload later.
        """
        self._require("new", "be initialised")
        wanted = checks.initial_status(status)
        if description is not None and not isinstance(description, str):
            raise ValidationError("description must be a string")
        fields: dict[str, Any] = {
            "tags": checks.tags(tags),
            "metadata": checks.plain_json(metadata or {}, "metadata"),
            "parameters": checks.plain_json(parameters or {}, "parameters"),
        }
        dest = target(self._store_arg, offline_from_env() if offline is None else bool(offline))
        running = wanted is Status.RUNNING
        record = create_run(
            dest.store, name=name, folder=check.folder(folder), kind=Kind.TRACKED,
            status=wanted, description=description, **fields, **self._identity(dest, running),
        )
        self._target, self._record = dest, record
        if running:
            self._open()
        else:
            self._state = "queued"
        return self

    def reconnect(self, ref: str, *, offline: bool | None = None) -> Run:
        """Open an existing run (by id or name) and mark it running: a queued run, a lost
        run whose owner died, or a run this process already owns."""
        self._require("new", "reconnect")
        dest = target(self._store_arg, offline_from_env() if offline is None else bool(offline))
        run = liveness.refresh(dest.store, dest.store.find_run(ref))
        lifecycle.check_reconnectable(run)
        dest.store.update_run(run.id, **self._identity(dest, True, run.config))
        if run.status is not Status.RUNNING:
            run = dest.store.update_status(run.id, Status.RUNNING, "reconnected",
                                           expect=run.status)
        self._target, self._record = dest, run
        self._open()
        return self

    def _identity(self, dest: Target, running: bool,
                  config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Owner, heartbeat, code, environment and settings recorded with the run."""
        settings = {**(config or {}), "heartbeat_interval": self._timing.heartbeat_interval,
                    "offline": dest.offline, "store": lifecycle.redacted(dest.store.url)}
        fields: dict[str, Any] = {"config": settings, "environment": environment()}
        if self._capture_code:
            fields["code"] = code_identity()
        if running:
            fields.update(owner=liveness.this_owner(), heartbeat=_now())
        return fields

    def _open(self) -> None:
        assert self._target is not None and self._record is not None
        session = Session(self._target.store, self._record.id, self._timing,
                          Resources(gpu=self._gpu))
        self._session = session
        self._metrics, self._events = session.metrics, session.events
        self._state, self._pid = "open", os.getpid()
        session.start(self._on_process)

    # -- logging (the hot path) -----------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None,
                    time: float | None = None) -> None:
        """Queue metric values (numbers; NaN and ±inf are kept) at ``step`` and ``time``.

        Every value is checked here, before any is queued, so a bad one never reaches the
        background writer, where it would cost the good values of its batch. A call with a bad
        value (not a number, an int beyond a float, a name with a line break or NUL), step
        (not 0 to 2**63-1) or time raises ``ValidationError`` naming it and queues nothing of
        that call: it happened entirely or not at all, so logging it again is safe.
        """
        queue = self._metrics
        if queue is None:
            raise self._not_open("log metrics")
        if step is not None and (step.__class__ is not int or not 0 <= step <= MAX_STEP):
            step = checks.step(step)
        when = _now() if time is None else checks.timestamp(time)
        if metrics.__class__ is dict and len(metrics) == 1:  # the common case, inline
            (name,) = metrics
            value = metrics[name]
            if name not in self._names or value.__class__ is not float:
                value = self._checked(name, value)
            queue += (name, value, step, when)  # one value: WIDTH entries, added at once
        else:
            if metrics.__class__ is not dict or not self._names.issuperset(metrics) or not (
                set(map(type, metrics.values())) <= _FLOAT
            ):
                metrics = self._checked_all(metrics)
            for name, value in metrics.items():
                queue += (name, value, step, when)
        if len(queue) >= self._cap_entries:
            self._pressure()

    def _checked(self, name: str, value: Any) -> float:
        """One value checked, as a float; its name is remembered as good."""
        if name not in self._names:
            self._names.add(checks.metric_name(name))
        if value.__class__ is float:
            return value
        return checks.metric_value(name, value)

    def _checked_all(self, metrics: Mapping[str, Any]) -> dict[str, float]:
        """The caller's metrics, every one checked (values as floats), in a new dict; a
        ``ValidationError`` naming every bad one if any is."""
        good: dict[str, float] = {}
        refused: dict[Any, ValidationError] = {}
        for name, value in checks.mapping(metrics).items():
            try:
                good[name] = self._checked(name, value)
            except ValidationError as exc:
                refused[name] = exc
        if refused:
            raise checks.refusal(refused)
        return good

    def log_event(self, message: str, level: str = "info", *, time: float | None = None) -> None:
        """Queue a timestamped message (level: debug, info, warning, error, critical)."""
        queue = self._events
        if queue is None:
            raise self._not_open("log events")
        checks.event(message, level)
        queue.append(Event(_now() if time is None else checks.timestamp(time), message, level))
        if len(queue) >= self._cap:
            self._pressure()

    def _pressure(self) -> None:
        if self._session is not None:
            self._session.pressure()

    def save_file(self, path: str | Path, category: str | None = None, *,
                  name: str | None = None) -> Artifact:
        """Keep the file at ``path`` in the run's data catalog (named after the file).

        The content is copied (and hashed) into the blob store now, so the file may change or
        go away afterwards; the background thread makes the blobs durable, a batch at a time,
        then writes their catalog entries (``flush`` and ``close`` wait for both).
        """
        session = self._session
        if session is None or self._state != "open":
            raise self._not_open("save files")
        source = Path(path)
        if not source.is_file():
            raise ValidationError(
                f"cannot save {str(path)!r}: there is no such file (or it is a folder)"
            )
        if category is not None and not isinstance(category, str):
            raise ValidationError("a file's category is a string, like 'output'")
        label = check.artifact_name(source.name if name is None else name)
        assert self._target is not None
        batch = session.blobs or session.blob_batch(self._target.blobs_for(session.run_id))
        ref = batch.put_file(source)  # made durable by the thread, before its catalog entry
        artifact = Artifact(label, ref.digest, ref.size, Stage.PUT, _now(), None, category)
        session.files.append(artifact)
        session.file_saved(ref.size)
        return artifact

    def update_tags(self, tags: Iterable[str]) -> None:
        """Add ``tags`` to the run's tags."""
        wanted = checks.tags(tags)
        self._record = self._writable("update tags").add_tags(self.id, wanted)

    def update_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` into the run's metadata; existing keys are replaced."""
        data = checks.plain_json(metadata, "metadata")
        self._record = self._writable("update metadata").merge_metadata(self.id, data)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written (``False``: ``timeout`` passed)."""
        if self._session is None or self._state != "open":
            return True
        return self._session.flush(timeout)

    # -- closing --------------------------------------------------------------------------------
    def close(self, status: str | Status = "succeeded", reason: str | None = None) -> None:
        """Write everything queued, then end the run as ``status`` (default: succeeded).

        Raises ``DataLost`` (after marking the run failed) if anything could not be written.
        A queued (``created``) run stays queued unless ``status`` is ``canceled``. Closing a
        closed run does nothing.
        """
        if self._state == "closed":
            return
        if self._state in ("new", "forked"):
            raise self._not_open("close")
        final = checks.final_status(status)
        if self._state == "queued":
            self._state = "closed"
            if final is Status.CANCELED:
                self._record = self.store.update_status(self.id, final, reason)
            return
        self._finish(final, reason)

    def _finish(self, final: Status, reason: str | None, patience: float | None = None) -> None:
        assert self._session is not None
        session, self._metrics, self._events = self._session, None, None
        self._state = "closed"
        session.stop(patience)
        lost = session.flusher.lost_message()
        if lost is not None:
            final, reason = Status.FAILED, lost
        summary = session.resources.summary() if session.resources else {}
        try:
            self._record = session.lease.end(final, reason, resources=summary)
        except RunyardError as exc:
            if lost is None:
                raise
            lost = f"{lost}; its end could not be recorded either ({exc})"
        if lost is not None:
            raise DataLost(lost, dict(session.flusher.lost))

    def _on_process(self, cause: Cause) -> None:
        """The process exits, forks or got SIGTERM with this run open (``tracking.process``):
        close it (failed after an uncaught error; canceled on SIGTERM), or, in a forked child,
        leave it to the parent."""
        if cause == "fork" or os.getpid() != self._pid:
            self._state, self._metrics, self._events, self._session = "forked", None, None, None
        elif cause == "sigterm":
            self._finish(Status.CANCELED, "terminated (SIGTERM)", TERM_PATIENCE)
        elif (error := getattr(sys, "last_value", None)) is None:
            self.close()
        else:
            self.close(Status.FAILED, lifecycle.reason_of(error))

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._state in ("new", "closed", "forked"):
            return
        if error is None:
            self.close()
            return
        status, reason = lifecycle.outcome(error)
        try:
            self.close(status, reason)
        except RunyardError as problem:  # the caller's own error matters more: note ours
            error.add_note(f"runyard: while closing run {self.id}: {problem}")

    # -- state ----------------------------------------------------------------------------------
    def _opened(self) -> RunRecord:
        if self._record is None:
            raise TrackingError("this run is not open yet: call run.init() or run.reconnect()")
        return self._record

    def _require(self, state: str, action: str) -> None:
        if self._state != state:
            raise self._not_open(action)

    def _writable(self, action: str) -> RunStore:
        if self._state not in ("open", "queued"):
            raise self._not_open(action)
        return self.store

    def _not_open(self, action: str) -> TrackingError:
        return lifecycle.not_open(action, self._state, self._record, self._pid)
