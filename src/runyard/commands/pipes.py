"""The threads of a supervisor that move a job's bytes: buffers through named pipes, and logs.

An ``InputPump`` opens a replica's input pipe for writing (which waits for the job to open it)
and copies the buffer into it as the buffer is written. An ``OutputPump`` reads a replica's
output pipe into its part of the output buffer, opening it again after each writer closes it,
until the job has ended. ``poke`` releases a pump still waiting in ``open`` once the job is gone.
A ``LogReader`` turns a job's stdout or stderr into timestamped log lines.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import IO

from runyard.blobs import BlobStore
from runyard.commands.buffers import ChunkSink, WriterGone, copy_chunk, follow, pump_fd
from runyard.commands.registry import INCOMPLETE, Registry
from runyard.model import LogLine

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
MAX_LINE = 64 << 10


def make_fifo(path: Path) -> Path:
    os.mkfifo(path, 0o600)
    return path


def widen(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer: fewer, larger copies (best effort)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)


class Pump(threading.Thread):
    """A pump thread on one named pipe; ``error`` says why it failed, if it did."""

    write_end = False

    def __init__(self, path: Path, registry: Registry, blobs: BlobStore, buffer_id: str):
        super().__init__(name=f"pump-{path.name}", daemon=True)
        self.path, self.registry, self.blobs, self.buffer_id = path, registry, blobs, buffer_id
        self.error: str | None = None
        self.job_ended = threading.Event()

    def poke(self) -> None:
        """Open and close the other end once, so a blocked ``open`` returns."""
        flags = (os.O_RDONLY if self.write_end else os.O_WRONLY) | os.O_NONBLOCK
        with contextlib.suppress(OSError):
            os.close(os.open(self.path, flags))

    def finish(self, timeout: float = 5.0) -> None:
        """The job ended: release the pump and wait for it."""
        self.job_ended.set()
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            self.poke()
            self.join(0.02)


class InputPump(Pump):
    write_end = True

    def __init__(self, path: Path, registry: Registry, blobs: BlobStore, buffer_id: str,
                 gone: WriterGone):
        super().__init__(path, registry, blobs, buffer_id)
        self.gone = gone
        self.release = threading.Event()  # set by the supervisor once the job is stopped

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            return
        try:
            widen(fd)
            self._copy(fd)
        except BrokenPipeError:
            pass  # the job closed its end: it read what it wanted
        except Exception as exc:
            self.error = f"copying input buffer {self.buffer_id} failed: {exc}"
            self.release.wait()
        finally:
            os.close(fd)
        self.registry.close()

    def _copy(self, fd: int) -> None:
        for chunk in follow(self.registry, self.buffer_id, self.gone, self.job_ended.is_set):
            copy_chunk(self.blobs, chunk, fd)
        buffer = self.registry.buffer(self.buffer_id)
        if buffer.state == INCOMPLETE:
            self.error = f"input buffer {buffer.id} is incomplete: {buffer.reason}"
            self.release.wait()  # keep the pipe open: the job must not see a clean end


class OutputPump(Pump):
    def __init__(self, path: Path, registry: Registry, blobs: BlobStore, buffer_id: str,
                 part: int):
        super().__init__(path, registry, blobs, buffer_id)
        self.part = part
        self.size = 0

    def run(self) -> None:
        sink = ChunkSink(self.registry, self.blobs, self.buffer_id, self.part)
        try:
            try:
                while True:
                    fd = os.open(self.path, os.O_RDONLY)
                    try:
                        widen(fd)
                        pump_fd(fd, sink)
                    finally:
                        os.close(fd)
                    if self.job_ended.is_set():
                        break
            except Exception as exc:
                sink.abandon(exc)
                raise
            self.size = sink.close()
        except Exception as exc:
            self.error = f"storing output buffer {self.buffer_id} failed: {exc}"
        self.registry.close()


class LogReader(threading.Thread):
    """Reads one stream of a replica line by line into a shared list of log lines."""

    def __init__(self, stream: IO[bytes], name: str, step: str, sink: list[LogLine],
                 lock: threading.Lock):
        super().__init__(name=f"log-{step}-{name}", daemon=True)
        self.stream, self.stream_name, self.step = stream, name, step
        self.sink, self.lock = sink, lock

    def run(self) -> None:
        with self.stream:
            while line := self.stream.readline(MAX_LINE):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                entry = LogLine(time.time(), text, self.stream_name, self.step)
                with self.lock:
                    self.sink.append(entry)
