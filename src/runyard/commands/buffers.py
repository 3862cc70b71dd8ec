"""Streaming bytes into and out of buffers, chunk by chunk, never whole in memory.

A writer cuts what it reads from a file descriptor into chunks of at most ``CHUNK_SIZE`` bytes
(sooner when the source pauses for ``FLUSH_AFTER_S``); a worker thread puts each chunk in the
blob store and records it, so hashing and disk writes overlap with reading. A reader follows the
chunk records as they appear, part after part, and copies each blob to its output with
``sendfile``. Memory is bounded by a few chunks whatever the size of the stream.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator

from runyard.blobs import BlobStore
from runyard.commands.registry import (
    CREATED,
    FINAL_STATES,
    Buffer,
    Chunk,
    Registry,
)
from runyard.errors import ConflictError

CHUNK_SIZE = 8 << 20
FLUSH_AFTER_S = 0.2
POLL_MIN_S, POLL_MAX_S = 0.002, 0.05
LIVENESS_EVERY_S = 0.5

WriterGone = Callable[[Buffer], "str | None"]  # why a buffer's writer is gone, or None


class ChunkSink:
    """Stores chunks of one part of a buffer, in order, on a worker thread."""

    def __init__(self, registry: Registry, blobs: BlobStore, buffer_id: str, part: int = 0):
        self.registry, self.blobs, self.buffer_id, self.part = registry, blobs, buffer_id, part
        self.seq = self.size = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"sink-{part}", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def _work(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                ref = self.blobs.put_bytes(data)
                self.registry.add_chunk(self.buffer_id,
                                        Chunk(self.part, self.seq, ref.digest, ref.size))
                self.seq, self.size = self.seq + 1, self.size + ref.size
            except BaseException as exc:  # handed to the producer on its next call
                self._error = exc
        self.registry.close()

    def close(self) -> int:
        """Wait for every chunk, then mark the end of the part; returns the bytes stored."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.registry.add_chunk(self.buffer_id, Chunk(self.part, self.seq, None, 0))
        return self.size


def pump_fd(fd: int, sink: ChunkSink) -> None:
    """Copy everything readable from ``fd`` into ``sink`` until end of file."""
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    fill, first = 0, 0.0
    while True:
        if fill and not _readable(fd, first + FLUSH_AFTER_S - time.monotonic()):
            sink.put(bytes(view[:fill]))
            fill = 0
            continue
        n = os.readv(fd, [view[fill:]])
        if n == 0:
            break
        if fill == 0:
            first = time.monotonic()
        fill += n
        if fill == CHUNK_SIZE:
            sink.put(bytes(view))
            fill = 0
    if fill:
        sink.put(bytes(view[:fill]))


def _readable(fd: int, timeout: float) -> bool:
    if timeout <= 0:
        return False
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except (OSError, ValueError):
        return True  # not selectable (a regular file is always readable)


def write_buffer(registry: Registry, blobs: BlobStore, buffer_id: str, fd: int,
                 *, claim: bool = True) -> Buffer:
    """Fill a fresh buffer from ``fd`` (to end of file) as this process; mark it complete.

    With ``claim=False`` the buffer was claimed for this process already. If the copy fails
    the buffer is marked incomplete, never passed off as complete.
    """
    if claim:
        from runyard.core.liveness import this_owner

        registry.claim(buffer_id, this_owner())
    try:
        sink = ChunkSink(registry, blobs, buffer_id)
        pump_fd(fd, sink)
        sink.close()
    except BaseException as exc:
        registry.finish(buffer_id, False, f"writing failed: {type(exc).__name__}: {exc}")
        raise
    registry.finish(buffer_id, True)
    return registry.buffer(buffer_id)


def follow(registry: Registry, buffer_id: str, gone: WriterGone,
           stop: Callable[[], bool] | None = None) -> Iterator[Chunk]:
    """Yield the data chunks of a buffer as they are stored, until it is complete or
    incomplete (or ``stop()`` while waiting); ``gone`` says when a writer died so the buffer
    is marked incomplete."""
    part = seq = 0
    pause, checked = POLL_MIN_S, time.monotonic()
    while True:
        buffer = registry.buffer(buffer_id)  # read before the chunks: final means all recorded
        progressed = False
        for chunk in registry.chunks_after(buffer_id, part, seq):
            if (chunk.part, chunk.seq) != (part, seq):
                break
            progressed = True
            part, seq = (part + 1, 0) if chunk.digest is None else (part, seq + 1)
            if chunk.digest is not None:
                yield chunk
        if progressed:
            pause = POLL_MIN_S
            continue
        if buffer.state in FINAL_STATES or (stop is not None and stop()):
            return
        if time.monotonic() - checked >= LIVENESS_EVERY_S:
            checked = time.monotonic()
            _check_writer(registry, buffer, gone)
        time.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)


def _check_writer(registry: Registry, buffer: Buffer, gone: WriterGone) -> None:
    reason = gone(buffer)
    if reason is not None:
        registry.finish(buffer.id, False, reason)


def copy_chunk(blobs: BlobStore, chunk: Chunk, out_fd: int) -> None:
    """Write the blob of ``chunk`` to ``out_fd`` (zero-copy where the kernel allows)."""
    assert chunk.digest is not None
    with blobs.open(chunk.digest) as source:
        src, offset = source.fileno(), 0
        while offset < chunk.size:
            try:
                sent = os.sendfile(out_fd, src, offset, chunk.size - offset)
            except OSError as exc:
                if exc.errno not in (22, 38):  # EINVAL, ENOSYS: not for this kind of fd
                    raise
                _copy_plain(source, out_fd, offset)
                return
            if sent == 0:
                return
            offset += sent


def _copy_plain(source: object, out_fd: int, offset: int) -> None:
    import io

    assert isinstance(source, io.BufferedReader)
    source.seek(offset)
    while data := source.read(1 << 20):
        view = memoryview(data)
        while view:
            view = view[os.write(out_fd, view):]


def read_buffer(registry: Registry, blobs: BlobStore, buffer_id: str, out_fd: int,
                gone: WriterGone) -> Buffer:
    """Copy the buffer to ``out_fd`` as it is written; returns it in its final state."""
    buffer = registry.buffer(buffer_id)
    if buffer.state == CREATED and buffer.run_id is None:
        raise ConflictError(f"buffer {buffer_id} has no data yet; write it with "
                            f"`runyard buffer write {buffer_id}`")
    for chunk in follow(registry, buffer_id, gone):
        copy_chunk(blobs, chunk, out_fd)
    return registry.buffer(buffer_id)
