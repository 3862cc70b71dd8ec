"""Streaming bytes into and out of buffers, chunk by chunk, never whole in memory.

A writer reads from a file descriptor straight into one of a few reused chunk buffers of
``CHUNK_SIZE`` bytes (page-aligned memory maps, so blobs are written straight to the disk,
without a copy into the page cache). Chunks end at fixed offsets of the stream (multiples of
``CHUNK_SIZE``), or sooner when the source pauses for ``FLUSH_AFTER_S``, so the same bytes make
the same blobs.
Threads take each chunk on: hashers identify chunks side by side and store them in the blob
store (fsynced, skipped when the blob is there already), a writer records them in order, so
reading, hashing and disk writes overlap. Chunks are addressed by BLAKE3 (``blake3:…``
digests, see ``runyard.blobs.digests``): a strong hash that runs at gigabytes per second where
SHA-256 (without SHA instructions) manages under 250 MB/s and would bound the stream. A chunk
is hashed once, in place (the GIL is released meanwhile); one whose blob is stored already,
such as a job's output that repeats its input, is not written again. Chunks stored by earlier
versions, addressed by SHA-256, are read as before.

A reader follows the chunk records as they appear, part after part, and copies each blob to
its output with ``sendfile``. Memory is bounded by ``DEPTH`` chunks per writer whatever the
size of the stream.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from runyard.blobs import BLAKE3, BlobRef, BlobStore, hash_bytes
from runyard.commands.registry import (
    CREATED,
    FINAL_STATES,
    Buffer,
    Chunk,
    Registry,
)
from runyard.errors import ConflictError

if TYPE_CHECKING:
    import mmap
    import queue

    from runyard.model import Owner

CHUNK_SIZE = 8 << 20
# Threads that hash and store chunks side by side (hashlib releases the GIL): one more than
# the cores of a small machine, so that two hash while the third waits for its fsync.
HASHERS = 3
DEPTH = HASHERS + 2  # chunk buffers per writer: one filling, HASHERS hashing, one recorded
FLUSH_AFTER_S = 0.2
POLL_MIN_S, POLL_MAX_S = 0.002, 0.01
LIVENESS_EVERY_S = 0.5

WriterGone = Callable[[Buffer], "str | None"]  # why a buffer's writer is gone, or None


class _Slot:
    """One chunk on its way: filled by the producer, identified by a hasher, stored in order."""

    __slots__ = ("buf", "done", "n", "ref")

    def __init__(self, buf: mmap.mmap, n: int) -> None:
        self.buf, self.n = buf, n
        self.ref: BlobRef | None = None
        self.done = threading.Event()


class ChunkSink:
    """Stores the chunks of one part of a buffer, in order: fill ``space()``, report with
    ``filled(n)``; ``flush()`` ends a chunk early; ``close()`` ends the part.

    ``HASHERS`` threads identify and store chunks side by side (hashing on as many cores,
    waiting for as many fsyncs); one writer records them in their order."""

    def __init__(self, registry: Registry, blobs: BlobStore, buffer_id: str, part: int = 0):
        import queue  # only writers need it: not imported at the start of every command

        self.registry, self.blobs, self.buffer_id, self.part = registry, blobs, buffer_id, part
        self.seq = self.size = 0
        self.offset = 0  # bytes received so far
        self.first = 0.0  # when the chunk being filled got its first bytes
        self._buf: mmap.mmap | None = None
        self._fill = self._limit = 0
        self._made = 0
        self._free: queue.Queue[mmap.mmap] = queue.Queue()
        self._hash: queue.Queue[_Slot | None] = queue.Queue()
        self._store: queue.Queue[_Slot | None] = queue.Queue()
        self._error: BaseException | None = None
        self._hashers = [threading.Thread(target=self._hasher, name=f"hash-{part}", daemon=True)
                         for _ in range(HASHERS)]
        self._threads = [*self._hashers,
                         threading.Thread(target=self._writer, name=f"store-{part}", daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def pending(self) -> int:
        """Bytes in the chunk being filled."""
        return self._fill

    def space(self) -> memoryview:
        """Where the next bytes go: the rest of the chunk up to its fixed end."""
        if self._error is not None:
            raise self._error
        if self._buf is None:
            self._buf = self._take()
            self._fill = 0
            self._limit = CHUNK_SIZE - self.offset % CHUNK_SIZE
        return memoryview(self._buf)[self._fill:self._limit]

    def filled(self, n: int) -> None:
        if self._fill == 0:
            self.first = time.monotonic()
        self._fill += n
        self.offset += n
        if self._fill >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Hand the chunk being filled on, if it has any bytes."""
        if self._buf is not None and self._fill:
            slot = _Slot(self._buf, self._fill)
            self._store.put(slot)  # the writer takes them in this order
            self._hash.put(slot)
            self._buf, self._fill = None, 0

    def _take(self) -> mmap.mmap:
        if self._made < DEPTH and self._free.empty():
            import mmap

            self._made += 1
            return mmap.mmap(-1, CHUNK_SIZE)  # page-aligned: see the module docstring
        return self._free.get()

    def _hasher(self) -> None:
        while (slot := self._hash.get()) is not None:
            try:
                if self._error is None:
                    data = memoryview(slot.buf)[:slot.n]
                    slot.ref = hash_bytes(data, BLAKE3)
                    self.blobs.put_hashed(data, slot.ref, aligned=True)
            except BaseException as exc:  # handed to the producer on its next call
                self._error = exc
            finally:
                slot.done.set()

    def _writer(self) -> None:
        while (slot := self._store.get()) is not None:
            slot.done.wait()
            try:
                ref = slot.ref
                if self._error is None and ref is not None:
                    self.registry.add_chunk(self.buffer_id, Chunk(
                        self.part, self.seq, ref.digest, ref.size))
                    self.seq, self.size = self.seq + 1, self.size + ref.size
            except BaseException as exc:
                self._error = exc
            finally:
                self._free.put(slot.buf)

    def _stop(self) -> None:
        for _ in self._hashers:
            self._hash.put(None)
        self._store.put(None)

    def abandon(self, why: BaseException) -> None:
        """Stop storing (the stream failed): the threads end, nothing more is recorded."""
        if self._error is None:
            self._error = why
        self._stop()

    def close(self) -> int:
        """Wait for every chunk, then mark the end of the part; returns the bytes stored."""
        self.flush()
        self._stop()
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error
        self.registry.add_chunk(self.buffer_id, Chunk(self.part, self.seq, None, 0))
        return self.size


def pump_fd(fd: int, sink: ChunkSink) -> None:
    """Copy everything readable from ``fd`` into ``sink`` until end of file."""
    while True:
        if sink.pending and not _readable(fd, sink.first + FLUSH_AFTER_S - time.monotonic()):
            sink.flush()
            continue
        n = os.readv(fd, [sink.space()])
        if n == 0:
            break
        sink.filled(n)
    sink.flush()


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
        from runyard.processes.owners import this_owner

        registry.claim(buffer_id, this_owner())
    sink = ChunkSink(registry, blobs, buffer_id)
    try:
        try:
            pump_fd(fd, sink)
        except BaseException as exc:
            sink.abandon(exc)
            raise
        sink.close()
    except BaseException as exc:
        registry.finish(buffer_id, False, f"writing failed: {type(exc).__name__}: {exc}")
        raise
    registry.finish(buffer_id, True)
    return registry.buffer(buffer_id)


class BufferWriter:
    """A fresh buffer filled by bytes pushed to it (a server's request body), as this
    ``owner`` (the server, claimed at once): ``write`` stores them in chunks like
    ``write_buffer``; ``close`` marks the buffer complete; ``fail`` marks it incomplete with
    why (the client went away midway), never passing it off as complete. Calls may come from
    different threads, one at a time."""

    def __init__(self, registry: Registry, blobs: BlobStore, buffer_id: str,
                 owner: Owner | None) -> None:
        registry.claim(buffer_id, owner)
        self.registry, self.buffer_id = registry, buffer_id
        self.sink = ChunkSink(registry, blobs, buffer_id)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            space = self.sink.space()
            n = min(len(space), len(view))
            space[:n] = view[:n]
            self.sink.filled(n)
            view = view[n:]

    def close(self) -> Buffer:
        try:
            self.sink.close()
        except BaseException as exc:
            self.registry.finish(self.buffer_id, False, _failed(exc))
            raise
        self.registry.finish(self.buffer_id, True)
        return self.registry.buffer(self.buffer_id)

    def fail(self, why: BaseException) -> None:
        self.sink.abandon(why)
        self.registry.finish(self.buffer_id, False, _failed(why))


def _failed(exc: BaseException) -> str:
    return f"writing failed: {type(exc).__name__}: {exc}"


def follow(registry: Registry, buffer_id: str, gone: WriterGone,
           stop: Callable[[], bool] | None = None) -> Iterator[Chunk]:
    """Yield the data chunks of a buffer as they are stored, until it is complete or
    incomplete (or ``stop()`` while waiting); ``gone`` says when a writer died so the buffer
    is marked incomplete."""
    reader = Follower(registry, buffer_id, gone)
    while True:
        chunks, wait = reader.step()
        yield from chunks
        if wait is None:
            return
        if wait:
            if stop is not None and stop():
                return
            time.sleep(wait)


class Follower:
    """A reader's place in a buffer: ``follow`` one step at a time, for a caller that waits
    its own way between steps (the server's event loop, where a sleeping thread per reader
    would use up the thread pool)."""

    def __init__(self, registry: Registry, buffer_id: str, gone: WriterGone) -> None:
        self.registry, self.buffer_id, self.gone = registry, buffer_id, gone
        self.part = self.seq = 0
        self.pause, self.checked = POLL_MIN_S, time.monotonic()
        self.buffer: Buffer | None = None  # as read when no new chunk was found

    def step(self) -> tuple[list[Chunk], float | None]:
        """The data chunks stored since the last step, and how many seconds to wait before the
        next (0: go on at once; ``None``: the buffer has ended and every chunk was read)."""
        chunks, progressed = self._read()
        if progressed:
            self.pause, self.buffer = POLL_MIN_S, None
            return chunks, 0.0
        if self.buffer is not None and self.buffer.state in FINAL_STATES:
            return [], None  # it was final before the chunks were read: they were all recorded
        self.buffer = self.registry.buffer(self.buffer_id)
        if self.buffer.state in FINAL_STATES:
            return [], 0.0  # read the chunks once more, then end
        if time.monotonic() - self.checked >= LIVENESS_EVERY_S:
            self.checked = time.monotonic()
            _check_writer(self.registry, self.buffer, self.gone)
        pause, self.pause = self.pause, min(self.pause * 2, POLL_MAX_S)
        return [], pause

    def _read(self) -> tuple[list[Chunk], bool]:
        """The data chunks that follow on from where the reader is, and whether any chunk
        (an end of a part included) was passed."""
        chunks, progressed = [], False
        for chunk in self.registry.chunks_after(self.buffer_id, self.part, self.seq):
            if (chunk.part, chunk.seq) != (self.part, self.seq):
                break
            progressed = True
            if chunk.digest is None:
                self.part, self.seq = self.part + 1, 0
            else:
                self.seq += 1
                chunks.append(chunk)
        return chunks, progressed


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
