"""Buffers in process: chunking at fixed offsets, stored once, identified without hashing when
the same bytes are stored already; following a run through its supervisor's event pipe."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runyard.blobs import BLAKE3, BlobStore, hash_bytes
from runyard.commands import buffers
from runyard.commands.buffers import ChunkSink, read_buffer, write_buffer
from runyard.commands.registry import Registry
from runyard.stores import open_store

MB = 1 << 20


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(buffers, "CHUNK_SIZE", MB)
    return MB


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Registry, BlobStore]:
    return Registry(open_store(f"sqlite://{tmp_path}/runyard.db")), BlobStore(tmp_path / "blobs")


def data(size: int, seed: int) -> bytes:
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


def store(registry: Registry, blobs: BlobStore, content: bytes, tmp_path: Path) -> str:
    source = tmp_path / f"in-{os.urandom(4).hex()}"
    source.write_bytes(content)
    buffer_id = registry.create_buffer().id
    with open(source, "rb") as stream:
        write_buffer(registry, blobs, buffer_id, stream.fileno())
    return buffer_id


def read_back(registry: Registry, blobs: BlobStore, buffer_id: str, tmp_path: Path) -> bytes:
    target = tmp_path / f"out-{os.urandom(4).hex()}"
    with open(target, "wb") as out:
        read_buffer(registry, blobs, buffer_id, out.fileno(), lambda buffer: None)
    return target.read_bytes()


def digests(registry: Registry, buffer_id: str) -> list[str | None]:
    return [c.digest for c in registry.chunks_after(buffer_id, 0, 0) if c.digest]


def test_chunks_end_at_fixed_offsets_after_an_early_flush(
        small_chunks: int, parts: tuple[Registry, BlobStore]) -> None:
    registry, blobs = parts
    sink = ChunkSink(registry, blobs, registry.create_buffer().id)
    space = sink.space()
    space[:100] = b"x" * 100
    sink.filled(100)
    sink.flush()  # as after a pause of the source
    assert len(sink.space()) == small_chunks - 100  # the next chunk ends at the fixed offset
    sink.close()


def test_the_same_bytes_are_stored_once(
        small_chunks: int, parts: tuple[Registry, BlobStore], tmp_path: Path) -> None:
    registry, blobs = parts
    content = data(3 * small_chunks + 12345, seed=1)
    first = store(registry, blobs, content, tmp_path)
    stored = sorted(blobs)
    second = store(registry, blobs, content, tmp_path)
    assert digests(registry, second) == digests(registry, first)
    assert sorted(blobs) == stored, "no blob was written again"
    assert read_back(registry, blobs, second, tmp_path) == content


def test_chunks_are_addressed_by_blake3_and_checked_by_it(
        small_chunks: int, parts: tuple[Registry, BlobStore], tmp_path: Path) -> None:
    registry, blobs = parts
    content = data(small_chunks, seed=2)
    first = store(registry, blobs, content, tmp_path)
    other = bytearray(content)
    other[200_000:200_010] = b"0123456789"
    second = store(registry, blobs, bytes(other), tmp_path)
    assert digests(registry, first) == [hash_bytes(content, BLAKE3).digest]
    assert digests(registry, second) == [hash_bytes(other, BLAKE3).digest]
    assert all(digest.startswith("blake3:") and blobs.verify(digest) for digest in blobs)
    assert read_back(registry, blobs, second, tmp_path) == bytes(other)


def test_chunks_stored_under_sha256_are_still_read(
        parts: tuple[Registry, BlobStore], tmp_path: Path) -> None:
    from runyard.commands.registry import Chunk

    registry, blobs = parts
    buffer_id = registry.create_buffer().id
    registry.claim(buffer_id, None)
    ref = blobs.put_bytes(b"stored by an earlier runyard")  # SHA-256, as chunks once were
    registry.add_chunk(buffer_id, Chunk(0, 0, ref.digest, ref.size))
    registry.add_chunk(buffer_id, Chunk(0, 1, None, 0))
    registry.finish(buffer_id, True)
    assert len(ref.digest) == 64
    assert read_back(registry, blobs, buffer_id, tmp_path) == b"stored by an earlier runyard"


def test_blobs_hold_and_put_hashed(parts: tuple[Registry, BlobStore]) -> None:
    _, blobs = parts
    ref = blobs.put_bytes(bytearray(b"some bytes"))
    assert blobs.holds(ref.digest, b"some bytes")
    assert not blobs.holds(ref.digest, b"other byte")
    assert not blobs.holds(ref.digest, b"short")
    assert not blobs.holds("0" * 64, b"some bytes")
    assert blobs.put_hashed(memoryview(b"some bytes"), ref) == ref
    assert blobs.read_bytes(ref.digest) == b"some bytes"


def test_following_a_run_through_its_event_pipe(tmp_path: Path) -> None:
    from runyard.commands.follow import wait
    from runyard.core.runs import create_run
    from runyard.model import Kind, Status
    from runyard.stores import open_store

    store = open_store(f"sqlite://{tmp_path}/runyard.db")
    run = create_run(store, kind=Kind.COMMAND, status=Status.PENDING)
    events_read, events_write = os.pipe()

    def supervisor() -> None:
        mine = open_store(f"sqlite://{tmp_path}/runyard.db")
        for status in (Status.RUNNING, Status.SUCCEEDED):
            mine.update_status(run.id, status)
            os.write(events_write, b".")
        os.close(events_write)
        mine.close()

    seen: list[str] = []
    thread = threading.Thread(target=supervisor)
    thread.start()
    last = wait(store, run.id, lambda r: seen.append(r.status.value), events_read)
    thread.join()
    os.close(events_read)
    assert last.status is Status.SUCCEEDED and seen[-1] == "succeeded"
    assert seen[0] in ("pending", "running", "succeeded")
    store.close()


def test_the_run_exec_path_imports_neither_psutil_nor_coolname() -> None:
    code = ("import sys, runyard.commands.execute, runyard.commands.runspec, "
            "runyard.commands.detach, runyard.commands.launch, runyard.core.runs; "
            "print(sorted({'psutil', 'coolname'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
