"""Blobs written in batches: whole and verified once ``close()`` returns, never partial under
their digest name after a kill, placed only at commit; store copy still verifies."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import stat
from pathlib import Path

import pytest

from runyard import Run
from runyard.blobs import BlobStore
from runyard.blobs.copying import STEP
from runyard.blobs.local import TEMP_PREFIX
from runyard.core.context import open_context
from runyard.core.copy import copy_store_urls
from runyard.errors import DataLost, IntegrityError, StoreError
from runyard.stores import open_store
from tracking_helpers import read_line, start_script

QUIET = "heartbeat_interval=None, resources_interval=None"
SIZES = [0, 1, 4095, 100_000, 3 << 20]  # bytes of the files a child saves, in turn


def cross_process(store_url: str) -> dict[str, str]:
    """The environment a child needs to reach ``store_url`` (a memory store cannot be)."""
    if store_url.startswith("memory:"):
        pytest.skip("a memory store lives in one process")
    blobs = os.environ.get("RUNYARD_BLOBS")
    return {} if blobs is None else {"RUNYARD_BLOBS": blobs}


def temps(blobs: BlobStore) -> list[Path]:
    return list(blobs.root.glob(TEMP_PREFIX + "*")) if blobs.root.is_dir() else []


def check_catalog(store_url: str, run_id: str) -> int:
    """Every catalog entry of the run names a whole, verified blob; how many there are."""
    store, blobs = open_store(store_url), open_context(store_url).blobs
    try:
        artifacts = store.list_artifacts(run_id)
    finally:
        store.close()
    for artifact in artifacts:
        assert blobs.size(artifact.hash) == artifact.size
        assert blobs.verify(artifact.hash), artifact
    assert blobs.verify_all() == []
    return len(artifacts)


def test_files_are_whole_and_verified_when_close_returns(store_url: str, tmp_path: Path) -> None:
    env = cross_process(store_url)
    child = start_script(f"""
        import os, signal
        from runyard import Run
        sizes = {SIZES}
        run = Run({store_url!r}, {QUIET})
        run.init(name="durable")
        for i in range(25):
            path = f"f{{i}}.bin"
            with open(path, "wb") as out:
                out.write(os.urandom(sizes[i % len(sizes)]))
            run.save_file(path)
        run.close()
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no exit handlers, nothing written after
    """, tmp_path, **env)
    run_id = read_line(child)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert check_catalog(store_url, run_id) == 25
    assert temps(open_context(store_url).blobs) == []


def test_a_run_killed_while_saving_leaves_no_entry_without_its_blob(
        store_url: str, tmp_path: Path) -> None:
    env = cross_process(store_url)
    child = start_script(f"""
        import os
        from runyard import Run
        sizes = {SIZES}
        run = Run({store_url!r}, {QUIET})
        run.init(name="killed")
        print(run.id, flush=True)
        for i in range(100_000):
            path = f"f{{i % 7}}.bin"
            with open(path, "wb") as out:
                out.write(os.urandom(sizes[i % len(sizes)]))
            run.save_file(path, name=f"f{{i}}.bin")
            if i % 10 == 9:
                print(i, flush=True)
    """, tmp_path, **env)
    run_id = read_line(child)
    for _ in range(4):
        read_line(child)
    child.kill()
    child.wait(timeout=60)
    check_catalog(store_url, run_id)  # whatever got in names a whole blob
    blobs = open_context(store_url).blobs
    blobs.remove_stale_temp(older_than=0)
    assert temps(blobs) == [] and blobs.verify_all() == []


def test_a_put_killed_mid_write_leaves_no_blob_under_its_name(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    child = start_script(f"""
        import io, os
        from runyard.blobs import BlobStore

        class Endless(io.RawIOBase):
            def readable(self):
                return True
            def readinto(self, buffer):
                print("writing", flush=True)
                buffer[:] = os.urandom(len(buffer))
                return len(buffer)

        BlobStore({str(root)!r}).put_stream(Endless())
    """, tmp_path)
    assert read_line(child) == "writing"
    read_line(child)  # a second chunk on its way: the temporary file holds the first
    child.kill()
    child.wait(timeout=60)
    blobs = BlobStore(root)
    assert list(blobs.digests()) == []
    assert len(temps(blobs)) == 1
    assert blobs.remove_stale_temp(older_than=0) == 1


def test_a_batch_places_its_blobs_only_at_commit(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    files = []
    for i, size in enumerate(SIZES):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(os.urandom(size))
    batch = blobs.batch()
    refs = [batch.put_file(path) for path in files]
    assert [r.digest for r in refs] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    assert not any(blobs.exists(r.digest) for r in refs)
    assert all(r.digest in batch for r in refs) and len(batch) == len(files)
    assert batch.commit() == {}
    for path, ref in zip(files, refs, strict=True):
        assert blobs.read_bytes(ref.digest) == path.read_bytes()
        assert stat.S_IMODE(blobs.path(ref.digest).stat().st_mode) == 0o444
    assert temps(blobs) == [] and len(batch) == 0 and refs[0].digest not in batch
    assert batch.commit() == {}


def test_a_batch_left_by_an_error_keeps_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    (tmp_path / "a").write_bytes(b"a" * 5000)
    with pytest.raises(KeyError), blobs.batch() as batch:
        ref = batch.put_file(tmp_path / "a")
        raise KeyError("the caller's own error")
    assert not blobs.exists(ref.digest) and temps(blobs) == []


def test_a_blob_that_cannot_be_placed_is_reported(tmp_path: Path) -> None:
    data = b"cannot be placed"
    digest = hashlib.sha256(data).hexdigest()
    blobs = BlobStore(tmp_path / "blobs")
    blobs.root.mkdir()
    (blobs.root / digest[:2]).write_bytes(b"a file where its folder should be")
    with pytest.raises(StoreError, match=digest):
        blobs.put_stream(io.BytesIO(data))
    assert temps(blobs) == []


def test_a_saved_file_whose_blob_cannot_be_placed_is_lost_at_close(
        store_url: str, isolated: Path) -> None:
    tmp_path = isolated  # (a memory store keeps its blobs under the working directory)
    data, other = b"bad" * 300, b"good" * 500
    digest = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(other).hexdigest()[:2] != digest[:2]  # (in another folder)
    (tmp_path / "good.bin").write_bytes(other)
    (tmp_path / "bad.bin").write_bytes(data)
    run = Run(store_url, heartbeat_interval=None, resources_interval=None)
    run.init(name="placed")
    blobs = open_context(store_url).blobs
    blobs.root.mkdir(parents=True, exist_ok=True)
    (blobs.root / digest[:2]).write_bytes(b"a file where its folder should be")
    good = run.save_file(tmp_path / "good.bin")
    run.save_file(tmp_path / "bad.bin")
    with pytest.raises(DataLost, match="1 files"):
        run.close()
    assert [a.name for a in run.store.list_artifacts(run.id)] == ["good.bin"]
    assert blobs.verify(good.hash) and temps(blobs) == []


def test_flush_makes_saved_files_readable(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/store/runyard.db"
    (tmp_path / "out.csv").write_bytes(b"a,b\n1,2\n")
    with Run(url, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name="flushed")
        artifact = run.save_file(tmp_path / "out.csv")
        run.flush()
        assert open_context(url).blobs.read_bytes(artifact.hash) == b"a,b\n1,2\n"
        assert [a.hash for a in run.store.list_artifacts(run.id)] == [artifact.hash]


def test_store_copy_verifies_and_keeps_no_partial_blob(tmp_path: Path) -> None:
    src, dst = f"sqlite://{tmp_path}/a/runyard.db", f"sqlite://{tmp_path}/b/runyard.db"
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(os.urandom(50_000 * (i + 1)))
    with Run(src, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name="copied")
        saved = [run.save_file(tmp_path / f"f{i}") for i in range(3)]
    src_blobs, dst_blobs = open_context(src).blobs, open_context(dst).blobs
    bad = src_blobs.path(saved[1].hash)
    bad.chmod(0o644)
    bad.write_bytes(os.urandom(saved[1].size))
    with pytest.raises(IntegrityError, match=saved[1].hash):
        copy_store_urls(src, dst)
    assert list(dst_blobs.digests()) == [] and temps(dst_blobs) == []
    bad.unlink()  # a missing blob is counted, not fatal: the others are copied
    report = copy_store_urls(src, dst)
    assert report.blobs_copied == 2 and report.blobs_missing == 1
    assert sorted(dst_blobs.digests()) == sorted(a.hash for a in (saved[0], saved[2]))
    assert dst_blobs.verify_all() == [] and temps(dst_blobs) == []


@pytest.mark.parametrize("size", [1, 4096, STEP - 1, STEP + 4097])
def test_a_file_copied_in_the_kernel_is_hashed_as_written(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    blobs = BlobStore(tmp_path / "blobs")
    ref = blobs.put_file(tmp_path / "f")
    assert (ref.digest, ref.size) == (hashlib.sha256(data).hexdigest(), size)
    assert blobs.read_bytes(ref.digest) == data and temps(blobs) == []


@pytest.mark.parametrize("buffering", [0, -1])
def test_a_stream_part_read_already_is_stored_from_where_it_stands(
        tmp_path: Path, buffering: int) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f").write_bytes(data)
    blobs = BlobStore(tmp_path / "blobs")
    with open(tmp_path / "f", "rb", buffering=buffering) as stream:
        stream.read(1000)  # a buffered reader holds more than that, ahead of the caller
        ref = blobs.put_stream(stream)
    assert ref.digest == hashlib.sha256(data[1000:]).hexdigest()
    assert blobs.read_bytes(ref.digest) == data[1000:]


def test_a_stream_that_transforms_its_file_is_stored_as_it_reads(tmp_path: Path) -> None:
    data = os.urandom(50_000) * 4
    with gzip.open(tmp_path / "f.gz", "wb") as out:
        out.write(data)
    blobs = BlobStore(tmp_path / "blobs")
    with gzip.open(tmp_path / "f.gz", "rb") as stream:  # has the file's fileno, too
        ref = blobs.put_stream(stream)  # type: ignore[arg-type]
    assert ref.digest == hashlib.sha256(data).hexdigest()


def test_a_proc_file_is_stored_with_its_content(tmp_path: Path) -> None:
    source = Path("/proc/self/status")
    if not source.exists():
        pytest.skip("no /proc here")
    blobs = BlobStore(tmp_path / "blobs")
    ref = blobs.put_file("/proc/self/stat")  # says it has 0 bytes, like /sys files say 4096
    assert ref.size > 0 and blobs.verify(ref.digest)
