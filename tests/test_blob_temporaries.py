"""A batch's pending copies are unnamed files where the file system has them: nothing of a
put shows in the store's folder before its commit, a killed writer leaves nothing behind,
a batch holds a bounded number of them open, and every blob is whole once the commit returns
(issue 16: ``runyard.blobs.tempfiles``, ``runyard.blobs.syncing.EarlySync``)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import pytest

from runyard.blobs import BlobStore
from runyard.blobs.tempfiles import TEMP_PREFIX, most_held
from runyard.core.context import open_context
from runyard.stores import open_store
from tracking_helpers import read_line, start_script


def unnamed_files_work(folder: Path) -> bool:
    """Whether ``folder``'s file system has unnamed temporary files (``O_TMPFILE``)."""
    try:
        os.close(os.open(folder, os.O_RDWR | getattr(os, "O_TMPFILE", 0), 0o600))
    except OSError:
        return False
    return hasattr(os, "O_TMPFILE")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    if not unnamed_files_work(tmp_path):
        pytest.skip("no unnamed temporary files (O_TMPFILE) on this file system")
    store = BlobStore(tmp_path / "blobs")
    store.root.mkdir()
    return store


def entries(blobs: BlobStore) -> list[str]:
    return sorted(p.name for p in blobs.root.iterdir())


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for i in range(count):
        paths.append(folder / f"f{i}")
        paths[-1].write_bytes(os.urandom(size))
    return paths


def test_pending_copies_leave_no_name_in_the_store_folder(blobs: BlobStore,
                                                          tmp_path: Path) -> None:
    files = make_files(tmp_path / "in", 40, 120_000)  # enough for the early syncs to start
    batch = blobs.batch()
    refs = [batch.put_file(path) for path in files]
    assert entries(blobs) == []  # neither temporary names nor blobs before the commit
    assert batch.commit() == {}
    for path, ref in zip(files, refs, strict=True):
        assert ref.digest == hashlib.sha256(path.read_bytes()).hexdigest()
        assert blobs.read_bytes(ref.digest) == path.read_bytes()
    assert not [name for name in entries(blobs) if name.startswith(TEMP_PREFIX)]
    assert blobs.verify_all() == []
    assert not [t for t in threading.enumerate() if t.name == "runyard-blob-sync"]


def test_a_process_holds_a_bounded_number_of_pending_copies(blobs: BlobStore,
                                                             tmp_path: Path) -> None:
    most = most_held()
    assert 0 < most <= 1024
    files = make_files(tmp_path / "in", most + 40, 10)
    before = open_descriptors()
    batch = blobs.batch()
    refs = [batch.put_file(path) for path in files]
    assert open_descriptors() - before == most
    named = [name for name in entries(blobs) if name.startswith(TEMP_PREFIX)]
    assert len(named) == 40  # the puts beyond the bound took named temporary files
    assert batch.commit() == {}
    assert open_descriptors() == before
    assert entries(blobs) == sorted({ref.digest[:2] for ref in refs})
    assert sorted(blobs.digests()) == sorted({ref.digest for ref in refs})


def test_discarding_a_batch_closes_its_pending_copies(blobs: BlobStore, tmp_path: Path) -> None:
    files = make_files(tmp_path / "in", 30, 1000)
    before = open_descriptors()
    with pytest.raises(KeyError), blobs.batch() as batch:
        for path in files:
            batch.put_file(path)
        raise KeyError("the caller's own error")
    assert open_descriptors() == before and entries(blobs) == []


def test_an_unnamed_copy_replaces_a_leftover_of_the_wrong_size(blobs: BlobStore,
                                                              tmp_path: Path) -> None:
    data = os.urandom(5000)
    digest = hashlib.sha256(data).hexdigest()
    (blobs.root / digest[:2]).mkdir()
    (blobs.root / digest[:2] / digest[2:]).write_bytes(data[:100])  # a torn older copy
    (tmp_path / "f").write_bytes(data)
    with blobs.batch() as batch:
        batch.put_file(tmp_path / "f")
    assert blobs.read_bytes(digest) == data and blobs.verify(digest)
    assert entries(blobs) == [digest[:2]]


def test_a_run_killed_before_its_commit_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    if not unnamed_files_work(tmp_path):
        pytest.skip("no unnamed temporary files (O_TMPFILE) on this file system")
    url = f"sqlite://{tmp_path}/store/runyard.db"
    child = start_script(f"""
        import os, time
        from runyard import Run
        run = Run({url!r}, heartbeat_interval=None, resources_interval=None,
                  flush_interval=600)
        run.init(name="killed")
        for i in range(30):
            with open(f"f{{i}}.bin", "wb") as out:
                out.write(os.urandom(50_000))
            run.save_file(f"f{{i}}.bin")
        print("saved", flush=True)
        time.sleep(600)
    """, tmp_path)
    assert read_line(child) == "saved"  # 30 copies wait for a commit that never comes
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    blobs = open_context(url).blobs
    assert list(blobs.digests()) == []
    assert not [p for p in blobs.root.glob(TEMP_PREFIX + "*")]  # nothing to clean up


def test_a_process_short_of_descriptors_still_saves_every_file(tmp_path: Path) -> None:
    if not unnamed_files_work(tmp_path):
        pytest.skip("no unnamed temporary files (O_TMPFILE) on this file system")
    url = f"sqlite://{tmp_path}/store/runyard.db"
    child = start_script(f"""
        import os, resource
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        from runyard import Run
        from runyard.blobs.tempfiles import most_held
        run = Run({url!r}, heartbeat_interval=None, resources_interval=None, flush_interval=600)
        run.init(name="few-descriptors")
        for i in range(300):  # all in one batch: the commit comes with close()
            with open(f"f{{i}}.bin", "wb") as out:
                out.write(os.urandom(2000))
            run.save_file(f"f{{i}}.bin")
        print(most_held(), len(os.listdir("/proc/self/fd")), flush=True)
        run.close()
        print(run.id, flush=True)
    """, tmp_path)
    most, descriptors = map(int, read_line(child).split())
    run_id = read_line(child)
    assert child.wait(timeout=60) == 0
    assert most == 16 and descriptors < 64
    blobs = open_context(url).blobs
    assert len(list(blobs.digests())) == 300 and blobs.verify_all() == []
    store = open_store(url)
    try:
        assert len(store.list_artifacts(run_id)) == 300
    finally:
        store.close()
