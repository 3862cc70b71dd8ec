"""What runs in the worker for one attempt of one task run: ``run_task``.

It loads the arguments (inline pickles, or blobs by digest), calls the task with its stdout and
stderr captured, and returns an ``Outcome``: the result as a ``Value`` (large results written to
the blob store here, in the worker, so they cross no pipe), or the error, and the captured
lines. It never raises for a task's failure; the caller decides about retries.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from runyard.engine.dag import substitute
from runyard.engine.values import _MISSING, Value, encode

if TYPE_CHECKING:
    from runyard.blobs import BlobStore

_local = threading.local()
_install_lock = threading.Lock()


@dataclass(slots=True)
class TaskCall:
    """One attempt as ``run_task`` takes it. (A runtime in the driver's process is given the
    driver's own record of the task run instead, which has these same attributes.)"""

    name: str  # the task run's
    task: Any  # TaskDef
    params: dict[str, Value | Bound]
    blobs: BlobStore | None
    local: bool  # runs in the driver's process: results keep their objects

    def __reduce__(self) -> tuple[Any, ...]:  # a plain tuple: pickled for every attempt
        return (TaskCall, (self.name, self.task, self.params, self.blobs, self.local))


@dataclass(slots=True)
class Bound:
    """A parameter that holds several results: the template and the ``Value`` of each ref."""

    template: Any
    values: dict[str, Value]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Bound, (self.template, self.values))


class Outcome:
    """How one attempt ended: ``ok``, its times, the result (or the error and its traceback),
    and the lines it printed ``(time, stream, line)``. A plain class with slots: one is made
    and handed back for every attempt."""

    __slots__ = ("ended", "error", "logs", "ok", "output", "started", "trace")

    def __init__(self, ok: bool, started: float, ended: float, output: Value | None = None,
                 error: str | None = None, trace: str | None = None,
                 logs: list[tuple[float, str, str]] | None = None) -> None:
        self.ok, self.started, self.ended, self.output = ok, started, ended, output
        self.error, self.trace = error, trace
        self.logs: list[tuple[float, str, str]] = [] if logs is None else logs

    def __repr__(self) -> str:
        return (f"Outcome(ok={self.ok}, started={self.started}, ended={self.ended}, "
                f"output={self.output!r}, error={self.error!r})")

    def __reduce__(self) -> tuple[Any, ...]:  # a plain tuple: sent back for every attempt
        return (Outcome, (self.ok, self.started, self.ended, self.output, self.error,
                          self.trace, self.logs))


class _Capture:
    """A thread's capture: the chunks written while it runs a task (``None``: not capturing)."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: list[tuple[float, str, str]] | None = None


def _chunks() -> list[tuple[float, str, str]] | None:
    capture: _Capture | None = getattr(_local, "capture", None)
    return None if capture is None else capture.chunks


class _Router(io.TextIOBase):
    """Writes go to the current thread's capture buffer if it has one, else to ``target``."""

    def __init__(self, target: TextIO, stream: str) -> None:
        self.target, self.stream = target, stream

    def write(self, text: str) -> int:
        chunks = _chunks()
        if chunks is None:
            return self.target.write(text)
        chunks.append((time.time(), self.stream, text))
        return len(text)

    def flush(self) -> None:
        if _chunks() is None:
            self.target.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def isatty(self) -> bool:
        return False


def _install() -> None:
    if isinstance(sys.stdout, _Router) and isinstance(sys.stderr, _Router):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "stderr")


def lines_of(chunks: list[tuple[float, str, str]]) -> list[tuple[float, str, str]]:
    """Chunks written per stream, joined and split into lines (each with its first time)."""
    open_line: dict[str, tuple[float, str]] = {}
    lines: list[tuple[float, str, str]] = []
    for when, stream, text in chunks:
        start, held = open_line.pop(stream, (when, ""))
        parts = (held + text).split("\n")
        for part in parts[:-1]:
            lines.append((start, stream, part))
            start = when
        if parts[-1]:
            open_line[stream] = (start, parts[-1])
    lines.extend((start, stream, held) for stream, (start, held) in open_line.items())
    return lines


def load_param(param: Value | Bound, blobs: BlobStore | None) -> Any:
    if isinstance(param, Value):
        return param.load(blobs)
    return substitute(param.template, lambda ref: param.values[ref.node].load(blobs))


def run_task(call: TaskCall) -> Outcome:
    """Run one attempt; see the module docstring."""
    if sys.stdout.__class__ is not _Router or sys.stderr.__class__ is not _Router:
        _install()
    chunks: list[tuple[float, str, str]] = []
    capture: _Capture | None = getattr(_local, "capture", None)
    if capture is None:
        capture = _local.capture = _Capture()
    capture.chunks = chunks
    blobs = call.blobs
    started = time.time()
    try:
        arguments = {}
        for name, param in call.params.items():  # load_param, with a value's object at hand
            obj = param.obj if param.__class__ is Value else _MISSING
            arguments[name] = obj if obj is not _MISSING else load_param(param, blobs)
        task = call.task
        result = task.fn(**arguments) if (task._plain or task.plain)[2] else task.call(arguments)
    except BaseException as exc:  # a task's failure is an outcome
        if not isinstance(exc, Exception):
            raise
        capture.chunks = None
        return Outcome(False, started, time.time(), None, _one_line(exc),
                       traceback.format_exc(), lines_of(chunks))
    capture.chunks = None
    output = encode(result, blobs, keep=call.local)
    logs = lines_of(chunks) if chunks else []
    if output.digest is None and not call.local:
        error = f"the result of task run {call.name} ({output.text}) does not pickle"
        return Outcome(False, started, time.time(), None, error, None, logs)
    return Outcome(True, started, time.time(), output, None, None, logs)


class Pending:
    """In a call submitted ahead (``run_task_after``), the result of the task run it was
    submitted after, not known yet when it was submitted."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pending, ())


PENDING = Pending()
SKIPPED = "not run: the task run it was submitted after did not succeed"


def run_task_after(call: TaskCall, earlier: Outcome) -> Outcome:
    """``run_task`` for a call submitted ahead, on the ``Outcome`` of the task run whose
    result it takes (``PENDING`` in its parameters); if that one failed, the call is not run
    (an outcome saying so, which the driver never asks for)."""
    if not earlier.ok or earlier.output is None:
        now = time.time()
        return Outcome(False, now, now, error=SKIPPED)
    output = earlier.output
    given: dict[str, Any] = call.params  # (PENDING among them)
    params: dict[str, Value | Bound] = {}
    for name, param in given.items():
        if param.__class__ is Pending:
            params[name] = output
        elif param.__class__ is Bound:
            values: dict[str, Any] = param.values
            params[name] = Bound(param.template, {
                ref: output if value.__class__ is Pending else value
                for ref, value in values.items()})
        else:
            params[name] = param
    call.params = params
    return run_task(call)


def _one_line(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
