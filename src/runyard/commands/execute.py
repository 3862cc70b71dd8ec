"""``run exec``: create a run, feed stdin to its input buffer, its output buffer to stdout, and
follow it to the end.

Standard input goes to the one input buffer not given with ``--buffer``; the one output buffer
not given goes to standard output as it is written. Status changes (and, on request, the job's
logs) are reported through callbacks, so the command line decides how they look.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runyard.commands import follow, launch
from runyard.commands.buffers import copy_chunk, write_buffer
from runyard.commands.runspec import RunSpec
from runyard.core.context import StoreContext
from runyard.errors import RunyardError, ValidationError
from runyard.model import LogLine, RunRecord

if TYPE_CHECKING:
    from runyard.commands.detach import Handle
    from runyard.commands.registry import Buffer

LOG_POLL_S = 0.1


@dataclass
class Streams:
    stdin_fd: int
    stdout_fd: int
    on_created: Callable[[RunRecord], None]
    on_status: Callable[[RunRecord], None]
    on_logs: Callable[[list[LogLine]], None] | None = None
    errors: list[str] = field(default_factory=list)


def exec_run(ctx: StoreContext, spec: RunSpec, io: Streams,
             handle: Handle | None = None) -> RunRecord:
    """Run ``spec`` with stdin and stdout as its buffers; the run as it ended."""
    inputs = _unbound(spec, spec.codespec.inputs, "input")
    outputs = _unbound(spec, spec.codespec.outputs, "output")
    owner = None if handle is None else handle.owner
    created = launch.create(ctx, spec, claim_inputs=frozenset(inputs), owner=owner)
    io.on_created(created.run)
    launch.start(ctx, created.run, handle)
    for name in inputs:  # not joined: stdin may outlast a run that never reads it
        _thread(_feed, ctx, created.buffers[name], io)
    workers = [_thread(_drain, ctx, created.buffers[n], io) for n in outputs]
    stop = threading.Event()
    if io.on_logs is not None:
        workers.append(_thread(_logs, ctx, created.run.id, io, stop))
    events = None if handle is None else handle.events
    run = _follow_or_cancel(ctx, created.run.id, io, events)
    stop.set()
    for name in inputs:
        ctx.registry.finish(created.buffers[name], False, "the run ended before stdin did")
    for worker in workers:
        worker.join()
    return run


def _follow_or_cancel(ctx: StoreContext, run_id: str, io: Streams, events: int | None) -> RunRecord:
    """Follow the run to its end; Ctrl-C (``KeyboardInterrupt``) cancels it and follows it
    to ``canceled``, a second one stops following (the supervisor still ends the run)."""
    try:
        return follow.wait(ctx.store, run_id, io.on_status, events)
    except KeyboardInterrupt:
        io.errors.append("interrupted: the run was asked to cancel")
        with contextlib.suppress(RunyardError):  # it ended meanwhile
            launch.cancel(ctx, run_id)
        return follow.wait(ctx.store, run_id, io.on_status, events)


def _unbound(spec: RunSpec, names: tuple[str, ...], what: str) -> list[str]:
    free = [n for n in names if n not in spec.buffers]
    if len(free) > 1:
        stream = "stdin" if what == "input" else "stdout"
        raise ValidationError(f"run exec connects one {what} buffer to {stream}; give the "
                              f"others with --buffer NAME=ID (not given: {', '.join(free)})")
    return free


def _thread(target: Callable[..., None], *args: object) -> threading.Thread:
    worker = threading.Thread(target=target, args=args, daemon=True)
    worker.start()
    return worker


def _feed(ctx: StoreContext, buffer_id: str, io: Streams) -> None:
    try:
        write_buffer(ctx.registry, ctx.blobs, buffer_id, io.stdin_fd, claim=False)
    except Exception as exc:
        io.errors.append(f"reading stdin failed: {exc}")


def _drain(ctx: StoreContext, buffer_id: str, io: Streams) -> None:
    from runyard.commands.buffers import follow as follow_buffer
    from runyard.stores import RunStore, open_store

    opened: list[RunStore] = []  # a store of this thread's own, opened if a check needs it

    def gone(buffer: Buffer) -> str | None:
        if not opened:
            opened.append(open_store(ctx.url))
        return follow.writer_gone(opened[0])(buffer)

    try:
        for chunk in follow_buffer(ctx.registry, buffer_id, gone):
            copy_chunk(ctx.blobs, chunk, io.stdout_fd)
    except BrokenPipeError:
        io.errors.append("stdout was closed; the rest of the output was not written")
    finally:
        for store in opened:
            store.close()


def _logs(ctx: StoreContext, run_id: str, io: Streams, stop: threading.Event) -> None:
    from runyard.stores import open_store

    assert io.on_logs is not None
    store = open_store(ctx.url)  # a connection of this thread's own
    try:
        reader = follow.LogFollower(store, run_id)
        while not stop.wait(LOG_POLL_S):
            io.on_logs(reader.new_lines())
        io.on_logs(reader.new_lines())
    finally:
        store.close()
