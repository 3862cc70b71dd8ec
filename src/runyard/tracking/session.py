"""The machinery behind one open run: its queues and the background thread that empties them.

One thread per open run wakes every ``flush_interval`` (or at once when asked), writes what
the queues hold, beats the heartbeat and samples resources when they are due. The caller only
appends to a queue (a flat ``list`` for metric values, ``WIDTH`` entries each; ``deque`` for
the rest); when a queue holds ``capacity`` values the caller waits in ``pressure`` until the
thread has brought it down to half (back-pressure, never dropping).
``stop`` writes everything still queued and joins the thread. Sessions still open when the
process exits, forks or gets SIGTERM are dealt with by ``runyard.tracking.process``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from runyard.core.lease import Lease
from runyard.errors import RunyardError
from runyard.model import Artifact, Event
from runyard.runtimes import threads
from runyard.stores import RunStore
from runyard.tracking.flusher import WIDTH, Flusher, MetricField
from runyard.tracking.process import Closer, open_runs
from runyard.tracking.resources import Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

    from runyard.blobs import BlobStore
    from runyard.blobs.batch import BlobBatch
    from runyard.runtimes.threads import Latch

NOTIFY_PATIENCE = 0.5  # seconds the thread waits to tell callers of progress
SYNC_BYTES = 32 << 20  # bytes of saved files worth a sync by the thread now


@dataclass(frozen=True)
class Timing:
    """How often the background thread acts (``None``: never)."""

    flush_interval: float = 0.5
    heartbeat_interval: float | None = 10.0
    resources_interval: float | None = 10.0
    capacity: int = 100_000  # queued values (or events) before the caller waits


class Session:
    """Queues, flusher and background thread of one open run."""

    def __init__(self, store: RunStore, run_id: str, timing: Timing,
                 resources: Resources | None) -> None:
        self.store, self.run_id, self.timing = store, run_id, timing
        self.metrics: list[MetricField] = []  # WIDTH entries a value, cut from the front
        self.events: deque[Event] = deque()
        self.files: deque[Artifact] = deque()
        self.blobs: BlobBatch | None = None  # the files' blobs, committed before their entries
        self._batch_lock = threading.Lock()
        self._unsynced = 0  # bytes of files saved since the thread was last woken for them
        self.flusher = Flusher(store, run_id)
        self.lease = Lease(store, run_id, heartbeat_s=timing.heartbeat_interval,
                           cancel_check_s=None)
        self.resources = resources
        self.low = max(timing.capacity // 2, 1)
        self.low_entries = self.low * WIDTH
        self._wake = Wake()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._idle = True
        now = time.monotonic()
        self._due = {"heartbeat": _after(now, timing.heartbeat_interval),
                     "sample": _after(now, timing.resources_interval)}
        self._writing = threading.Lock()  # held while the queues are written (thread or stop)
        self._ended = False  # the last write was done (or the writer failed): no more writes
        self._done: Latch | None = None  # set when the thread has left the loop
        self._runner: threading.Thread | None = None

    # -- the caller's side ------------------------------------------------------------------
    def start(self, closer: Closer) -> None:
        """Start the thread; ``closer`` is told when the process exits, forks or is terminated
        with the run still open (``runyard.tracking.process``).

        The thread is a kept one (``runtimes.threads``) where one is free: starting a thread
        and then joining it cost a short run 250 of its 940 us (issue 16)."""
        self._done = threads.start(self._loop, f"runyard-run-{self.run_id}")
        open_runs.add(self, self.run_id, closer)

    def blob_batch(self, blobs: BlobStore) -> BlobBatch:
        """The batch the run's files go into (made on first use): the thread commits it, all
        blobs at once, before it writes their catalog entries."""
        with self._batch_lock:
            if self.blobs is None:
                self.blobs = blobs.batch()
            return self.blobs

    def queued(self) -> int:
        return len(self.metrics) // WIDTH + len(self.events) + len(self.files)

    def file_saved(self, size: int) -> None:
        """A file's blob of ``size`` bytes was put: once ``SYNC_BYTES`` wait, wake the thread
        so it syncs them while the caller copies the next ones (2 x 256 MB: the second is
        copied while the first is written to disk). Fewer, bigger syncs cost less: 200 x
        100 KB went ~290-310 MB/s with one sync at close, ~250-280 with one per 32 files."""
        self._unsynced += size
        if self._unsynced >= SYNC_BYTES:
            self._unsynced = 0
            self._wake.set()

    def pressure(self) -> None:
        """Wait until the thread has brought the queues down to half their capacity."""
        self._wake.set()
        with self._progress:
            while (len(self.metrics) > self.low_entries or len(self.events) > self.low) and (
                self._alive()
            ):
                self._wake.set()
                self._progress.wait(0.1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; ``False`` if ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while (self.queued() or not self._idle) and self._alive():
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._wake.set()
                self._progress.wait(left)
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Write everything still queued, stop the thread, and count what was left over
        (``timeout``: seconds to wait for the thread at most; what it has not written by then
        is counted as lost).

        Without a ``timeout`` the caller writes what is left itself, once the thread's batch in
        progress (if any) is written: waiting for the thread to wake and end cost 100 us."""
        open_runs.discard(self)
        self._stopping.set()
        self._wake.set()
        if threading.current_thread() is not self._runner:
            if timeout is None:
                self._write(final=True)
            elif self._done is not None:
                self._done.wait(timeout)
        finished = self._ended or not self._alive()
        if self.blobs is not None and finished:
            self.blobs.discard()  # blobs of entries the thread could not take
        if not finished and self.flusher.first_error is None:
            self.flusher.first_error = f"the writer did not finish within {timeout} s"
        self._count_leftovers()

    def _alive(self) -> bool:
        """Whether the thread is (still) in its loop."""
        return self._done is not None and not self._done.is_set()

    def _count_leftovers(self) -> None:
        """Anything the thread could not take (it died on a bug) is lost, and counted."""
        for kind, n in (("metric values", len(self.metrics) // WIDTH),
                        ("events", len(self.events)),
                        ("files", len(self.files))):
            if n:
                self.flusher.lost[kind] += n
        if self.queued() and self.flusher.first_error is None:
            self.flusher.first_error = "the background writer stopped"
        self.metrics.clear()
        self.events.clear()
        self.files.clear()

    # -- the background thread --------------------------------------------------------------
    def _loop(self) -> None:
        self._runner = threading.current_thread()
        try:
            while True:
                self._wake.wait(self._timeout())
                if not self._write(final=self._stopping.is_set()):
                    return
        finally:
            self._idle = True
            self._notify()

    def _write(self, final: bool) -> bool:
        """Write what is queued, and what is due unless ``final`` (the last write, after which
        nothing is written); ``False`` once the session has ended. Runs in the thread, or, for
        the last write, in the caller of ``stop``: whichever holds ``_writing``."""
        with self._writing:
            if self._ended:
                return False
            self._ended = final
            try:
                self._drain()
                if not final:
                    self._periodic()
            except Exception as exc:  # a bug: leave the leftovers for ``stop`` to count
                self._ended = True
                _log().exception("runyard: the writer of run %s stopped", self.run_id)
                self.flusher.stopped(exc)
            return not self._ended

    def _timeout(self) -> float:
        now = time.monotonic()
        due = min(self._due.values())
        return max(0.0, min(self.timing.flush_interval, due - now))

    def _drain(self) -> None:
        while self.queued():
            self._idle = False
            self._write_files()
            self.flusher.events(self.events)
            self.flusher.metrics(self.metrics)
            self._notify()
        self._idle = True
        self._notify()

    def _write_files(self) -> None:
        """Commit the blobs of the files queued so far, then write their catalog entries
        (every one counted here had its blob put before it was queued)."""
        count = len(self.files)
        failed = self.blobs.commit() if count and self.blobs is not None else {}
        self.flusher.files(self.files, failed, count)

    def _notify(self) -> None:
        """Tell waiting callers there was progress. A caller that a signal handler interrupted
        may hold the lock while the handler waits for this thread, so give up after a while:
        callers look again every 0.1 s anyway."""
        if self._progress.acquire(timeout=NOTIFY_PATIENCE):
            try:
                self._progress.notify_all()
            finally:
                self._progress.release()

    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._due["sample"] and self.resources is not None:
            self._due["sample"] = _after(now, self.timing.resources_interval)
            self._guarded("sample resources", self._sample)
        if now >= self._due["heartbeat"]:
            self._due["heartbeat"] = _after(now, self.timing.heartbeat_interval)
            self._guarded("beat the heartbeat", self.heartbeat)

    def _sample(self) -> None:
        assert self.resources is not None
        now = time.time()
        queue = self.metrics
        for name, value in self.resources.sample().items():
            queue += (name, float(value), None, now)

    def heartbeat(self) -> None:
        """Record that the owner is alive (with the resource summary), through the run's lease:
        a lost run that beats again goes back to running."""
        if self.resources is None:
            self.lease.beat()
        else:
            self.lease.beat(resources=self.resources.summary())

    def _guarded(self, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except (RunyardError, OSError) as exc:
            _log().warning("runyard: could not %s for run %s: %s", what, self.run_id, exc)


class Wake:
    """A wake-up call for the background thread, safe to give from a signal handler:
    ``set`` is one C call (``SimpleQueue.put``), so it never waits for a lock held by the code
    the handler interrupted, as ``threading.Event.set`` does (SIGTERM hung on it)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[None] = queue.SimpleQueue()

    def set(self) -> None:
        self._calls.put(None)

    def wait(self, timeout: float) -> None:
        """Wait until ``set`` (or ``timeout`` seconds), then forget every call given so far."""
        try:
            self._calls.get(timeout=timeout)
            while True:
                self._calls.get_nowait()
        except queue.Empty:
            return


def _after(now: float, interval: float | None) -> float:
    return float("inf") if interval is None else now + interval


def _log() -> logging.Logger:
    """The tracking logger, imported when there is something to say (``logging`` costs 3 ms
    of the first ``Run()``, issue 16)."""
    import logging

    return logging.getLogger("runyard.tracking")
