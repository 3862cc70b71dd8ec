"""The content-addressed blob store, on real files."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from runyard.blobs import BlobRef, BlobStore, check_digest
from runyard.errors import BlobNotFound, IntegrityError, NotFoundError, ValidationError

MB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class GeneratedStream:
    """A readable binary stream of ``total`` pseudo-random bytes made on demand, never held.

    The content depends only on ``total`` and ``seed``, not on how it is read.
    """

    BLOCK = 64 * 1024

    def __init__(self, total: int, seed: bytes = b"seed") -> None:
        self.left = total
        self.seed = seed
        self.counter = 0
        self.pending = b""
        self.sha = hashlib.sha256()

    def _next_block(self) -> bytes:
        self.counter += 1
        digest = hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
        return digest * (self.BLOCK // len(digest))

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        parts, have = [self.pending], len(self.pending)
        while have < size:
            parts.append(self._next_block())
            have += self.BLOCK
        joined = b"".join(parts)
        chunk, self.pending = joined[:size], joined[size:]
        self.left -= len(chunk)
        self.sha.update(chunk)
        return chunk


def corrupt_file(path: Path, data: bytes) -> None:
    os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    path.write_bytes(data)


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def test_put_bytes_round_trip(blobs: BlobStore) -> None:
    ref = blobs.put_bytes(b"hello")
    assert ref == BlobRef(sha(b"hello"), 5)
    assert blobs.read_bytes(ref.digest) == b"hello"
    assert blobs.path(ref.digest) == blobs.root / ref.digest[:2] / ref.digest[2:]
    assert blobs.exists(ref.digest) and ref.digest in blobs
    assert blobs.size(ref.digest) == 5
    assert blobs.verify(ref.digest)
    assert blobs.check(ref.digest) == ref
    with blobs.open(ref.digest) as handle:
        assert handle.read() == b"hello"


def test_root_is_created_on_demand(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "a" / "b")
    assert list(blobs) == []
    assert not (tmp_path / "a").exists()
    ref = blobs.put_bytes(b"")
    assert ref == BlobRef(sha(b""), 0)
    assert blobs.read_bytes(ref.digest) == b""


def test_put_file_and_copy_to(blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 * MB + 17))
    ref = blobs.put_file(source)
    assert ref == BlobRef(sha(source.read_bytes()), source.stat().st_size)
    dest = blobs.copy_to(ref.digest, tmp_path / "out" / "deep" / "copy.bin")
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]  # no temp left behind


def test_copy_to_replaces_an_existing_file(blobs: BlobStore, tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    blobs.copy_to(blobs.put_bytes(b"new").digest, dest)
    assert dest.read_bytes() == b"new"


def test_second_put_leaves_the_blob_untouched(blobs: BlobStore) -> None:
    ref = blobs.put_bytes(b"same")
    before = blobs.path(ref.digest).stat()
    assert blobs.put_bytes(b"same") == ref
    after = blobs.path(ref.digest).stat()
    # the same file, not rewritten (its mtime is renewed, for a garbage collection's grace
    # period: see ``runyard.recording.collect``)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert after.st_mtime_ns >= before.st_mtime_ns
    assert list(blobs) == [ref.digest]
    assert not [p for p in blobs.root.iterdir() if p.name.startswith(".")]


def test_blobs_are_read_only(blobs: BlobStore) -> None:
    ref = blobs.put_bytes(b"frozen")
    assert not blobs.path(ref.digest).stat().st_mode & 0o222


def test_iteration_lists_every_digest_sorted(blobs: BlobStore) -> None:
    refs = [blobs.put_bytes(str(i).encode()) for i in range(20)]
    (blobs.root / ".tmp-leftover").write_bytes(b"x")
    (blobs.root / "README").write_text("not a blob")
    assert list(blobs) == sorted(r.digest for r in refs)
    assert list(blobs.digests()) == sorted(r.digest for r in refs)


def test_large_stream_uses_bounded_memory(blobs: BlobStore, tmp_path: Path) -> None:
    size = 50 * MB
    stream = GeneratedStream(size)
    tracemalloc.start()
    try:
        ref = blobs.put_stream(stream)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref == BlobRef(stream.sha.hexdigest(), size)
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB while storing {size / MB:.0f} MB"
    tracemalloc.start()
    try:
        blobs.copy_to(ref.digest, tmp_path / "big.bin")
        assert blobs.verify(ref.digest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB
    assert (tmp_path / "big.bin").stat().st_size == size


def _put_many(root: str, seed: bytes, rounds: int) -> str:
    blobs = BlobStore(root)
    digests = {blobs.put_stream(GeneratedStream(2 * MB, seed)).digest  # type: ignore[arg-type]
               for _ in range(rounds)}
    [digest] = digests
    return digest


def test_concurrent_puts_of_the_same_content(blobs: BlobStore) -> None:
    expected = GeneratedStream(2 * MB, b"shared")
    expected.read()
    digest = expected.sha.hexdigest()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pending = pool.starmap_async(_put_many, [(str(blobs.root), b"shared", 3)] * 4)
        while not pending.ready():  # a reader never sees a partial blob
            if blobs.exists(digest):
                assert blobs.size(digest) == 2 * MB
            pending.wait(0.005)
        results = pending.get()
    assert set(results) == {digest}
    assert list(blobs) == [digest]
    assert blobs.verify(digest)
    assert not [p for p in blobs.root.iterdir() if p.name.startswith(".")]


def test_verify_detects_corruption(blobs: BlobStore, tmp_path: Path) -> None:
    good = blobs.put_bytes(b"good data")
    bad = blobs.put_bytes(b"data to damage")
    corrupt_file(blobs.path(bad.digest), b"data to damagf")
    assert blobs.verify(good.digest)
    assert not blobs.verify(bad.digest)
    assert blobs.verify_all() == [bad.digest]
    with pytest.raises(IntegrityError, match=bad.digest):
        blobs.check(bad.digest)
    with pytest.raises(IntegrityError):
        blobs.copy_to(bad.digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["blobs"]  # no temp file left


def test_verifying_reader_detects_corruption(blobs: BlobStore) -> None:
    good = blobs.put_bytes(b"x" * 100_000)
    with blobs.open(good.digest, verify=True) as handle:
        assert handle.read() == b"x" * 100_000
    bad = blobs.put_bytes(b"y" * 100_000)
    corrupt_file(blobs.path(bad.digest), b"y" * 99_999 + b"z")
    with blobs.open(bad.digest, verify=True) as handle, pytest.raises(IntegrityError):
        while handle.read(4096):
            pass


def test_a_put_repairs_a_truncated_blob(blobs: BlobStore) -> None:
    ref = blobs.put_bytes(b"complete content")
    corrupt_file(blobs.path(ref.digest), b"compl")
    assert blobs.put_bytes(b"complete content") == ref
    assert blobs.verify(ref.digest)


def test_put_with_expected_digest(blobs: BlobStore) -> None:
    import io

    ref = blobs.put_stream(io.BytesIO(b"abc"), expect=sha(b"abc"))
    assert ref.digest == sha(b"abc")
    with pytest.raises(IntegrityError):
        blobs.put_stream(io.BytesIO(b"abd"), expect=sha(b"abc").upper())
    assert list(blobs) == [ref.digest]


def test_missing_blobs(blobs: BlobStore, tmp_path: Path) -> None:
    digest = sha(b"never stored")
    assert not blobs.exists(digest)
    for call in (blobs.open, blobs.read_bytes, blobs.size, blobs.verify, blobs.check):
        with pytest.raises(BlobNotFound):
            call(digest)
    with pytest.raises(BlobNotFound):
        blobs.copy_to(digest, tmp_path / "x")
    with pytest.raises(NotFoundError):
        blobs.put_file(tmp_path / "no-such-file")
    with pytest.raises(ValidationError):
        blobs.put_file(tmp_path)


@pytest.mark.parametrize(
    "digest", ["", "abc", "g" * 64, "a" * 63, "a" * 65, "../" + "a" * 61, "a" * 62 + "/x", None]
)
def test_bad_digests_are_refused(blobs: BlobStore, digest: str) -> None:
    for call in (blobs.path, blobs.exists, blobs.open, blobs.read_bytes, blobs.verify):
        with pytest.raises(ValidationError):
            call(digest)
    assert digest not in blobs
    assert not blobs.root.exists()


def test_digests_are_normalised_to_lowercase(blobs: BlobStore) -> None:
    ref = blobs.put_bytes(b"case")
    assert check_digest(ref.digest.upper()) == ref.digest
    assert blobs.read_bytes(ref.digest.upper()) == b"case"


def test_text_streams_are_refused(blobs: BlobStore) -> None:
    import io

    with pytest.raises(ValidationError, match="binary"):
        blobs.put_stream(io.StringIO("text"))  # type: ignore[arg-type]
    assert list(blobs) == []


def test_stale_temp_files_are_removed(blobs: BlobStore) -> None:
    assert blobs.remove_stale_temp() == 0
    ref = blobs.put_bytes(b"kept")
    old, young = blobs.root / ".tmp-old", blobs.root / ".tmp-young"
    old.write_bytes(b"left by a killed writer")
    young.write_bytes(b"a put in progress")
    os.utime(old, (1.0, 1.0))
    assert blobs.remove_stale_temp(older_than=60) == 1
    assert not old.exists() and young.exists()
    assert list(blobs) == [ref.digest]


def test_blake3_blobs_live_beside_sha256_ones(blobs: BlobStore, tmp_path: Path) -> None:
    from blake3 import blake3

    from runyard.blobs import BLAKE3, hash_bytes

    data = os.urandom(3 * 4096 + 17)  # whole pages and a tail: both ways of writing
    view = memoryview(bytearray(data))
    ref = hash_bytes(view, BLAKE3)
    assert ref.digest == "blake3:" + blake3(data).hexdigest()
    assert blobs.put_hashed(view, ref, aligned=True) == ref
    plain = blobs.put_bytes(data)
    assert plain.digest == hashlib.sha256(data).hexdigest()
    assert blobs.path(ref.digest).parent.parent.name == "blake3"
    assert list(blobs) == [plain.digest, ref.digest]
    assert blobs.read_bytes(ref.digest) == data and blobs.verify(ref.digest)
    assert check_digest(ref.digest.upper()) == ref.digest
    assert blobs.copy_to(ref.digest, tmp_path / "copy").read_bytes() == data
    path = blobs.path(ref.digest)
    path.chmod(0o644)
    path.write_bytes(data[:-1] + b"!")
    assert not blobs.verify(ref.digest)
    with pytest.raises(IntegrityError), blobs.open(ref.digest, verify=True) as handle:
        handle.read()


def test_where_an_upload_stands_counts_what_its_writer_is_still_writing(tmp_path: Path) -> None:
    """A client asks where its upload stands right after its connection broke, while the
    server's writer may still be writing what had reached it: the answer waits for that
    writer, so the bytes it keeps are not sent again; a writer that stays (another live
    uploader) gets an answer after ``settle`` with what it holds then."""
    import threading
    import time

    from runyard.blobs.uploads import Piece, Resumed, received

    blobs = BlobStore(tmp_path / "blobs")
    data = os.urandom(400_000)
    digest = hashlib.sha256(data).hexdigest()
    writer = Resumed(blobs, digest, Piece(0, 299_999, len(data)))
    writer.write(data[:100_000])

    def finish_later() -> None:
        time.sleep(0.3)
        writer.write(data[100_000:300_000])
        writer.abandon(keep=True)  # the client went away: what arrived stays

    later = threading.Thread(target=finish_later)
    later.start()
    assert received(blobs, digest) == 300_000
    later.join()
    staying = Resumed(blobs, digest, Piece(300_000, len(data) - 1, len(data)))
    staying.write(data[300_000:350_000])
    assert received(blobs, digest, settle=0.1) == 350_000
    staying.write(data[350_000:])
    assert staying.end() == BlobRef(digest, len(data))
    assert received(blobs, digest) == 0 and blobs.read_bytes(digest) == data
