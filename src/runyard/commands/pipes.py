"""The threads of a supervisor that move a job's bytes: buffers through named pipes, and logs.

An ``InputPump`` opens a replica's input pipe for writing (which waits for the job to open it)
and copies the buffer into it as the buffer is written. An ``OutputPump`` reads a replica's
output pipe into its part of the output buffer, opening it again after each writer closes it,
until the job has ended. ``poke`` releases a pump still waiting in ``open`` once the job is gone.
A ``LogReader`` turns a job's stdout or stderr into timestamped log lines.

The pipes lie in the job's folder, where the job may replace them (with a symbolic link to a
host file, say), so the supervisor never opens them by their path once the job runs: each pump
holds its pipe by a ``PipeHandle`` (an ``O_PATH`` descriptor taken with ``O_NOFOLLOW`` before
any job starts, checked to be the named pipe the supervisor made) and opens the pipe through
that descriptor. A job that replaced its pipe fails, saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
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


class PipeHandle:
    """A named pipe held by its inode, not its path: opening it never follows what a job put
    in its place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        info = os.fstat(self.fd)
        if not stat.S_ISFIFO(info.st_mode) or info.st_uid != os.geteuid():
            os.close(self.fd)
            raise PermissionError(f"{path} is {_kind(info.st_mode)}, not the named pipe "
                                  "runyard made")
        self.inode = (info.st_dev, info.st_ino)

    def open(self, flags: int) -> int:
        """Open the pipe itself (through ``/proc/self/fd``, so by its inode) with ``flags``."""
        fd = os.open(f"/proc/self/fd/{self.fd}", flags | os.O_CLOEXEC)
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self.inode:  # /proc is not what it should be
            os.close(fd)
            raise PermissionError(f"{self.path} did not open as the named pipe runyard made")
        return fd

    def replaced(self) -> str | None:
        """What the job put in the pipe's place, if it did (a removed pipe is no harm)."""
        try:
            info = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if (info.st_dev, info.st_ino) == self.inode else _kind(info.st_mode)

    def close(self) -> None:
        os.close(self.fd)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISREG, "a regular file"),
             (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "another named pipe"))
    return next((what for test, what in kinds if test(mode)), "a special file")


def variable(path: Path) -> str:
    """The environment variable that names the pipe at ``path`` to the job."""
    return f"{path.stem.upper()}_PIPE"


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
        self.handle: PipeHandle | None = None
        try:  # made before any job starts: see the module docstring
            self.handle = PipeHandle(path)
        except OSError as exc:
            self.error = f"cannot use the named pipe {variable(path)}: {exc}"

    def start(self) -> None:
        if self.handle is not None:  # without one, ``error`` says why: nothing to pump
            super().start()

    def poke(self) -> None:
        """Open and close the other end once, so a blocked ``open`` returns."""
        flags = (os.O_RDONLY if self.write_end else os.O_WRONLY) | os.O_NONBLOCK
        with contextlib.suppress(OSError):
            os.close(self._open(flags))

    def _open(self, flags: int) -> int:
        assert self.handle is not None
        return self.handle.open(flags)

    def finish(self, timeout: float = 5.0) -> None:
        """The job ended: release the pump, wait for it, and fail it if the job replaced its
        pipe (the pump never followed the replacement, but the job's output is not whole)."""
        self.job_ended.set()
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            self.poke()
            self.join(0.02)
        if self.handle is None or self.is_alive():
            return  # a pump still running may still open through the handle: keep it
        put = self.handle.replaced()
        if put is not None and self.error is None:
            self.error = (f"the job replaced its named pipe {variable(self.path)} with {put}; "
                          "runyard reads and writes only the pipe it made: use the pipe, do "
                          "not replace it")
        self.handle.close()
        self.handle = None


class InputPump(Pump):
    write_end = True

    def __init__(self, path: Path, registry: Registry, blobs: BlobStore, buffer_id: str,
                 gone: WriterGone):
        super().__init__(path, registry, blobs, buffer_id)
        self.gone = gone
        self.release = threading.Event()  # set by the supervisor once the job is stopped

    def run(self) -> None:
        try:
            fd = self._open(os.O_WRONLY)
        except OSError as exc:
            if not self.job_ended.is_set():
                self.error = f"cannot open the named pipe {variable(self.path)}: {exc}"
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
                    fd = self._open(os.O_RDONLY)
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
