"""Files and streams copied into the blob store by descriptor: every size, position and kind
of file gives the blob of exactly its bytes (``runyard.blobs.copying``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from runyard.blobs import BlobStore
from runyard.blobs.copying import SMALL
from runyard.blobs.digests import hash_bytes
from runyard.errors import IntegrityError, NotFoundError, ValidationError


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _temps(blobs: BlobStore) -> list[str]:
    return [p.name for p in blobs.root.glob(".tmp-*")]


@pytest.mark.parametrize("size", [0, 1, 4095, SMALL, SMALL + 1, 3 * SMALL + 7])
def test_a_file_is_stored_as_its_bytes_whatever_its_size(blobs: BlobStore, tmp_path: Path,
                                                         size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    ref = blobs.put_file(tmp_path / "f")
    assert (ref.digest, ref.size) == (hashlib.sha256(data).hexdigest(), size)
    assert blobs.read_bytes(ref.digest) == data
    assert blobs.verify(ref.digest) and not _temps(blobs)


@pytest.mark.parametrize("size", [5000, SMALL + 5000])
def test_an_unbuffered_stream_is_stored_from_its_position(blobs: BlobStore, tmp_path: Path,
                                                          size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb", buffering=0) as stream:
        stream.read(1000)
        ref = blobs.put_stream(stream)
    assert blobs.read_bytes(ref.digest) == data[1000:]


def test_a_file_that_reports_no_size_is_read_to_its_end(blobs: BlobStore) -> None:
    source = Path("/proc/self/mountinfo")
    if not source.exists() or source.stat().st_size:
        pytest.skip("needs a /proc file that reports size 0")
    ref = blobs.put_file(source)
    assert ref.size > 0 and blobs.verify(ref.digest)


def test_copying_a_blob_checks_it_against_the_digest_it_should_have(blobs: BlobStore,
                                                                    tmp_path: Path) -> None:
    data = os.urandom(SMALL // 2)
    other = BlobStore(tmp_path / "other")
    blake = other.put_bytes(data, "blake3")
    with other.open(blake.digest) as stream:
        assert blobs.put_stream(stream, expect=blake.digest) == blake
    wrong = hash_bytes(b"something else").digest
    with other.open(blake.digest) as stream, pytest.raises(IntegrityError):
        blobs.put_stream(stream, expect=wrong)
    assert not blobs.exists(wrong) and not _temps(blobs)


def test_folders_and_missing_files_are_refused(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is a directory"):
        blobs.put_file(tmp_path)
    with pytest.raises(NotFoundError):
        blobs.put_file(tmp_path / "absent")
    assert not _temps(blobs)


def test_a_batch_of_many_files_stores_every_file_at_its_commit(blobs: BlobStore,
                                                               tmp_path: Path) -> None:
    contents = [os.urandom(300_000) for _ in range(40)]  # one syncfs for all, not an fsync each
    for i, data in enumerate(contents):
        (tmp_path / f"f{i}").write_bytes(data)
    with blobs.batch() as batch:
        refs = [batch.put_file(tmp_path / f"f{i}") for i in range(len(contents))]
        assert not any(blobs.exists(ref.digest) for ref in refs)  # not before the commit
    assert [blobs.read_bytes(ref.digest) for ref in refs] == contents
    assert not _temps(blobs)
