"""Executing a recorded run's entrypoint through the process layer, under the run's lease.

The job starts under a warden (``processes.executors``), in the sandbox unless the caller asks
for the local executor, so its whole tree ends with runyard however runyard ends (a killed
``runyard record`` leaves the run to be found ``lost``, and no job behind). Its standard output
and error are read line by line as they come: kept in files for the ``runs/`` folder, written
to the run's logs every ``FLUSH_S`` (so ``runyard run logs -f`` follows it), and handed to the
caller's ``stream``. The waiting loop beats the lease, stops the tree on a cancel request, on
the timeout or on Ctrl-C, and the resources come from the one meter: CPU and peak memory of the
whole tree (``JobMeter``), read and written bytes (``exited_io``, read before the warden is
reaped), and every ``SAMPLE_S`` a sample of the tree as the ``system.*`` metrics.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runyard.core.lease import Lease
from runyard.model import Attempt, LogLine, Metric, Status, Step
from runyard.processes import executors
from runyard.processes.meter import JobMeter, exited_io
from runyard.processes.tree import kill_tree, sweep_group

STEP = "entrypoint"
TICK_S = 0.05
FLUSH_S = 0.1
SAMPLE_S = 1.0  # how often the tree is sampled into the system.* metrics
MIB = 1 << 20
Stream = Callable[[str, str], None]


@dataclass
class JobResult:
    """How the entrypoint ended."""

    status: Status
    reason: str | None
    exit_code: int | None
    started: float
    ended: float
    resources: dict[str, Any] = field(default_factory=dict)


class LogSink:
    """Log lines on their way to the run's logs (any thread appends; one flushes)."""

    def __init__(self, store: Any, run_id: str, stream: Stream | None) -> None:
        self.store, self.run_id, self.stream = store, run_id, stream
        self.lines: list[LogLine] = []
        self.lock = threading.Lock()
        self.flushed = 0.0

    def add(self, name: str, text: str, step: str | None = STEP) -> None:
        with self.lock:
            self.lines.append(LogLine(time.time(), text, name, step))
        if self.stream is not None:
            with contextlib.suppress(Exception):  # a closed terminal does not stop the run
                self.stream(name, text)

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.flushed = now
        with self.lock:
            batch, self.lines = self.lines, []
        if batch:
            self.store.append_logs(self.run_id, batch)

    def maybe_flush(self, now: float) -> None:
        if now - self.flushed >= FLUSH_S:
            self.flush(now)


@dataclass
class Launch:
    """What to start, where, and how."""

    command: list[str]
    env: Mapping[str, str]
    work: Path
    logs: Path  # the folder that receives ``stdout`` and ``stderr``
    executor: str = "sandbox"
    read_only: Sequence[str] = ()
    network: bool = False
    timeout: float | None = None
    inside: str | None = None  # where the sandboxed job sees its work folder


def run_job(launch: Launch, lease: Lease, sink: LogSink, meter: JobMeter) -> JobResult:
    """Start the entrypoint, follow it to its end (see the module docstring); ``meter``: the
    job's (made, and its first warden started, while the work folder was prepared)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = executors.argv(launch.executor, launch.command, launch.work,
                          read_only=launch.read_only, network=launch.network,
                          inside=launch.inside)
    started = time.time()
    try:
        proc = executors.start(argv, launch.env, launch.work, meter.procs_files)
    except OSError as exc:
        reason = f"failed to start: {exc.strerror or exc}"
        return _ended(lease, JobResult(Status.FAILED, reason, None, started, time.time()))
    watcher = _Watcher(proc, launch.logs, sink)
    attempt = Attempt(1, Status.RUNNING, started)  # recorded while the job starts
    lease.store.upsert_step(lease.run_id, Step(STEP, Status.RUNNING, STEP, attempts=(attempt,)))
    status, why = watcher.follow(lease, sink, launch.timeout)
    result = JobResult(status, why, proc.returncode, started, watcher.ended or time.time())
    result.resources = _resources(meter, before, watcher.io, result)
    return _ended(lease, result)


class _Watcher:
    """A started job: its readers, its waiter, and the loop that follows it."""

    def __init__(self, proc: subprocess.Popen[bytes], logs: Path, sink: LogSink) -> None:
        self.proc = proc
        self.io: dict[str, int] = {}
        self.ended: float | None = None
        self.exited = threading.Event()
        assert proc.stdout is not None and proc.stderr is not None
        self.readers = [
            threading.Thread(target=_read, args=(pipe, logs / name, name, sink),
                             daemon=True, name=f"runyard-record-{name}")
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        for reader in self.readers:
            reader.start()
        threading.Thread(target=self._wait, daemon=True, name="runyard-record-wait").start()

    def _wait(self) -> None:
        pid = self.proc.pid
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            self.io = exited_io(pid)
        self.proc.wait()
        self.ended = time.time()
        self.exited.set()

    def follow(self, lease: Lease, sink: LogSink,
               timeout: float | None) -> tuple[Status, str | None]:
        try:
            stop = self._loop(lease, sink, timeout)
        except KeyboardInterrupt:
            stop = (Status.CANCELED, "interrupted (Ctrl-C)")
        except BaseException:  # (the store failed us): the job does not outlive its record
            kill_tree(self.proc)
            raise
        if stop is not None:
            kill_tree(self.proc)
            self.exited.wait()
        sweep_group(self.proc.pid)
        for reader in self.readers:
            reader.join(5.0)
        sink.flush()
        return stop if stop is not None else _exit_status(self.proc.returncode)

    def _loop(self, lease: Lease, sink: LogSink,
              timeout: float | None) -> tuple[Status, str | None] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        sampler = Sampler(lease, self.proc.pid)
        while not self.exited.wait(TICK_S):
            now = time.monotonic()
            sink.maybe_flush(now)
            sampler.maybe_sample(now)
            if lease.tick(now):
                return Status.CANCELED, "canceled by request"
            if deadline is not None and now >= deadline:
                return Status.FAILED, f"timed out after {timeout:g}s"
        return None


class Sampler:
    """The job's tree sampled every ``SAMPLE_S`` into the ``system.*`` metrics (the names a
    tracked run uses): ``system.cpu_percent``, ``system.memory_mib``, ``system.processes``."""

    def __init__(self, lease: Lease, pid: int) -> None:
        self.lease, self.pid = lease, pid
        self.due = time.monotonic() + SAMPLE_S
        self.meter: Any = None
        self.last = (time.monotonic(), 0.0)
        self.count = 0

    def maybe_sample(self, now: float) -> None:
        if now < self.due:
            return
        self.due = now + SAMPLE_S
        with contextlib.suppress(Exception):  # (the tree ended meanwhile)
            self.lease.store.append_metrics(self.lease.run_id, self._sample(now))

    def _sample(self, now: float) -> list[Metric]:
        from runyard.processes.meter import TreeMeter

        if self.meter is None:
            self.meter = TreeMeter(self.pid)
        cpu, rss, count = self.meter.measure(tree=True)
        then, cpu_then = self.last
        self.last = (now, cpu)
        step, stamp = self.count, time.time()
        self.count += 1
        percent = max(0.0, (cpu - cpu_then) / max(now - then, 1e-6) * 100.0)
        return [Metric("system.cpu_percent", percent, step, stamp),
                Metric("system.memory_mib", rss / MIB, step, stamp),
                Metric("system.processes", float(count), step, stamp)]


def _read(pipe: IO[bytes], path: Path, name: str, sink: LogSink) -> None:
    """Copy a job's stream to ``path`` and, line by line, to the sink."""
    with open(path, "wb") as out:
        for raw in pipe:
            out.write(raw)
            out.flush()
            sink.add(name, raw.decode("utf-8", "replace").rstrip("\r\n"))


def _ended(lease: Lease, result: JobResult) -> JobResult:
    message = result.reason or "exit code 0"
    lease.store.upsert_attempt(lease.run_id, STEP, Attempt(
        1, result.status, result.started, result.ended, message=message,
        outputs={"exit_code": result.exit_code}))
    return result


def _exit_status(code: int | None) -> tuple[Status, str | None]:
    if code == 0:
        return Status.SUCCEEDED, None
    if code is None:
        return Status.FAILED, "did not run"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Status.FAILED, f"killed by {name}"
    return Status.FAILED, f"non-zero exit code {code}"


def _resources(meter: JobMeter, before: Any, io: dict[str, int],
               result: JobResult) -> dict[str, Any]:
    """The spec's resource names, from the meter's summary and the tree's I/O."""
    usage = meter.summary()
    if usage.get("meter") == "rusage":  # counts every child this process ever had: the delta
        usage["cpu_user_s"] = round(usage["cpu_user_s"] - before.ru_utime, 3)
        usage["cpu_system_s"] = round(usage["cpu_system_s"] - before.ru_stime, 3)
    return {"cpu_user": usage.get("cpu_user_s"), "cpu_system": usage.get("cpu_system_s"),
            "peak_memory": usage.get("peak_rss_bytes"),
            "read_bytes": io.get("read_bytes"), "write_bytes": io.get("write_bytes"),
            "disk_read_bytes": io.get("disk_read_bytes"),
            "disk_write_bytes": io.get("disk_write_bytes"),
            "wall_s": round(result.ended - result.started, 3), "meter": usage.get("meter")}
