"""Copying stores: every record equal afterwards, idempotent, resumable after a kill."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest

from runyard.blobs import BlobStore
from runyard.core import catalog
from runyard.core.context import open_context
from runyard.core.copy import (
    CopyReport,
    copy_run,
    copy_store,
    copy_store_urls,
)
from runyard.errors import ConflictError, IntegrityError
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    Kind,
    LogLine,
    Metric,
    Owner,
    Stage,
    Status,
    Step,
    status_path,
)
from runyard.stores import RunStore, open_store
from runyard.testing import make_run

KINDS = ["memory", "file", "chunked", "sqlite"]
PAIRS = [(a, b) for a in KINDS for b in KINDS]
STATUSES = [Status.CREATED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.LOST,
            Status.CANCELED, Status.PENDING, Status.CANCELING]


@contextlib.contextmanager
def opened(url: str) -> Iterator[RunStore]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def url_for(kind: str, folder: Path) -> str:
    if kind == "memory":
        return f"memory://{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite://{folder}/runyard.db"
    return f"{kind}://{folder}"


# -- building and comparing stores ------------------------------------------------------------
def populate(store: RunStore, blobs: BlobStore, count: int = 8) -> list[str]:
    """``count`` runs of every status and kind, each with steps, metrics, events, logs and a
    catalog; returns their ids, oldest first."""
    ids: list[str] = []
    for i in range(count):
        status = STATUSES[i % len(STATUSES)]
        run = store.create_run(make_run(
            folder=f"/exp/{i % 3}", kind=list(Kind)[i % 4], status=status,
            status_reason=None if status is Status.CREATED else f"reason {i}",
            description=f"run number {i}", tags=frozenset({f"t{i}", "all"}),
            metadata={"i": i, "nested": {"k": [i, None, True]}}, parameters={"lr": 0.5 * i},
            created=1000.0 + i, started=None if i % 8 in (0, 6) else 1000.5 + i,
            ended=1001.25 + i if status.is_final else None, heartbeat=1000.75 + i,
            owner=Owner("node-1", 100 + i, 5.5), code={"commit": f"c{i}", "dirty": False},
            environment={"python": "3.11"}, config={"store": "x"},
            origin=ids[-1] if ids else None, resources={"cpu_seconds": 0.25 * i},
        ))
        fill(store, blobs, run.id, i)
        ids.append(run.id)
    store.rename_run(ids[min(3, count - 1)], f"renamed-{uuid.uuid4().hex[:8]}")
    return ids


def fill(store: RunStore, blobs: BlobStore, run_id: str, i: int) -> None:
    store.upsert_step(run_id, Step("prepare", Status.SUCCEEDED, "task", 1000.0 + i,
                                   metadata={"n": i}))
    store.upsert_attempt(run_id, "prepare", Attempt(1, Status.FAILED, 1.0, 2.0, "boom", {"a": 1}))
    store.upsert_attempt(run_id, "prepare", Attempt(2, Status.SUCCEEDED, 3.0, 4.0, None, {},
                                                    {"out": [1, 2]}))
    store.upsert_step(run_id, Step(f"train-{i}", Status.RUNNING, "replica", 1001.0 + i))
    store.append_metrics(run_id, [Metric("loss" if k % 2 else "acc", k / 7, k, 2000.0 + k)
                                  for k in range(40 * (i + 1))])
    store.append_events(run_id, [Event(3000.0 + k, f"event {k} of {i}", "warning" if k % 3
                                       else "info") for k in range(i + 2)])
    store.append_logs(run_id, [LogLine(4000.0 + k, f"line {k} ✓", "stderr" if k % 2 else "stdout",
                                       None if k % 3 == 0 else "prepare") for k in range(3 * i)])
    catalog.save_bytes(store, blobs, run_id, f"result {i}".encode(), f"out/result-{i}.txt",
                       category="output", step="prepare")
    catalog.save_bytes(store, blobs, run_id, b"shared by every run", "common.bin")
    ref = blobs.put_bytes(b"input data")
    store.add_artifact(run_id, Artifact("data/in.csv", ref.digest, ref.size, Stage.GET,
                                        5000.0 + i, None, "input"))


def snapshot(store: RunStore) -> dict[str, tuple[Any, ...]]:
    """Everything a store holds, run by run, in a form that compares exactly."""
    return {
        run.id: (
            run,
            store.get_steps(run.id),
            store.read_metrics(run.id),
            store.read_events(run.id),
            store.read_logs(run.id),
            sorted(store.list_artifacts(run.id), key=lambda a: (a.name, a.stage.value)),
        )
        for run in store.list_runs(newest_first=False)
    }


def assert_blobs_present(store: RunStore, blobs: BlobStore) -> None:
    for run in store.list_runs():
        for art in store.list_artifacts(run.id):
            assert blobs.check(art.hash).size == art.size


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Open (src, dst) stores of the kinds named by the test's ``pair`` parameter."""
    src_kind, dst_kind = request.param
    pair = [open_store(url_for(src_kind, tmp_path / "src")),
            open_store(url_for(dst_kind, tmp_path / "dst"))]
    yield pair
    for store in pair:
        store.close()


# -- copying ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stores", PAIRS, indirect=True, ids=lambda p: f"{p[0]}-to-{p[1]}")
def test_copy_makes_equal_stores_and_is_idempotent(stores: Any, tmp_path: Path) -> None:
    src, dst = stores
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    ids = populate(src, src_blobs)
    report = copy_store(src, dst, src_blobs, dst_blobs)
    assert report == CopyReport(copied=len(ids), blobs_copied=len(ids) + 2)
    assert snapshot(dst) == snapshot(src)
    assert_blobs_present(dst, dst_blobs)
    again = copy_store(src, dst, src_blobs, dst_blobs)
    assert again == CopyReport(unchanged=len(ids))
    assert snapshot(dst) == snapshot(src)


def test_progress_is_reported(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    blobs = BlobStore(tmp_path / "blobs")
    populate(src, blobs, 3)
    seen: list[tuple[int, int]] = []
    report = copy_store(src, dst, blobs, blobs, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert report.blobs_copied == 0  # one blob store for both: nothing to copy
    assert snapshot(dst) == snapshot(src)


@pytest.mark.parametrize("stores", [("memory", "memory"), ("sqlite", "chunked")], indirect=True)
def test_resume_after_a_partial_copy(stores: Any, tmp_path: Path) -> None:
    src, dst = stores
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    ids = populate(src, src_blobs)
    for run_id in ids[:5]:  # what a copy killed in the middle of the sixth run had written
        copy_partially(src, dst, src_blobs, dst_blobs, run_id)
    report = copy_store(src, dst, src_blobs, dst_blobs)
    assert (report.copied, report.updated, report.unchanged) == (3, 5, 0)
    assert snapshot(dst) == snapshot(src)
    assert_blobs_present(dst, dst_blobs)
    assert copy_store(src, dst, src_blobs, dst_blobs) == CopyReport(unchanged=len(ids))


def copy_partially(src: RunStore, dst: RunStore, src_blobs: BlobStore, dst_blobs: BlobStore,
                   run_id: str) -> None:
    dst.create_run(src.get_run(run_id))
    dst.upsert_step(run_id, src.get_steps(run_id)[0])
    for kind in ("metrics", "events", "logs"):
        items = getattr(src, f"read_{kind}")(run_id)
        getattr(dst, f"append_{kind}")(run_id, items[: len(items) // 2])
    first = src.list_artifacts(run_id)[0]
    dst_blobs.put_bytes(src_blobs.read_bytes(first.hash))
    dst.add_artifact(run_id, first)


@pytest.mark.parametrize("stores", [("memory", "sqlite"), ("file", "memory")], indirect=True)
def test_changes_in_the_source_are_brought_over(stores: Any, tmp_path: Path) -> None:
    src, dst = stores
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    ids = populate(src, src_blobs, 3)
    fresh = src.create_run(make_run(created=50.0))
    copy_store(src, dst, src_blobs, dst_blobs)
    running = ids[1]
    src.update_status(running, Status.SUCCEEDED, "done", now=9000.0)
    src.update_status(fresh.id, Status.RUNNING, now=60.0)
    src.update_status(fresh.id, Status.CANCELING, now=61.0)
    src.update_status(fresh.id, Status.CANCELED, "user", now=62.0)
    src.rename_run(running, "finished-run")
    src.add_tags(running, ["late"])
    src.merge_metadata(running, {"i": "changed", "new": 1})
    src.set_parameters(running, {"extra": True})
    src.update_run(running, description="updated", heartbeat=9000.0, folder="/moved")
    src.upsert_attempt(running, "train-1", Attempt(1, Status.SUCCEEDED, 1.0, 9.0))
    src.append_metrics(running, [Metric("loss", 0.01, 999, 8000.0)])
    src.append_events(running, [Event(8001.0, "finished")])
    src.append_logs(running, [LogLine(8002.0, "bye")])
    catalog.save_bytes(src, src_blobs, running, b"late output", "late.txt")
    report = copy_store(src, dst, src_blobs, dst_blobs)
    assert report == CopyReport(updated=2, unchanged=2, blobs_copied=1)
    assert snapshot(dst) == snapshot(src)


def test_destination_only_runs_and_extra_tags_are_kept(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    blobs = BlobStore(tmp_path / "blobs")
    [run_id] = populate(src, blobs, 1)
    own = dst.create_run(make_run(name="only-in-dst"))
    copy_store(src, dst, blobs, blobs)
    dst.add_tags(run_id, ["dst-tag"])
    dst.merge_metadata(run_id, {"dst-key": 1})
    assert copy_store(src, dst, blobs, blobs) == CopyReport(unchanged=1)
    assert dst.get_run(own.id) == own
    assert "dst-tag" in dst.get_run(run_id).tags
    assert dst.get_run(run_id).metadata["dst-key"] == 1


def test_copy_one_run(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    first, second = populate(src, src_blobs, 2)
    assert copy_run(src, dst, src_blobs, dst_blobs, second) == CopyReport(
        copied=1, blobs_copied=3)
    assert [r.id for r in dst.list_runs()] == [second]
    assert snapshot(dst)[second] == snapshot(src)[second]
    src.append_metrics(second, [Metric("acc", 1.0, 1000, 1.0)])
    assert copy_run(src, dst, src_blobs, dst_blobs, second) == CopyReport(updated=1)
    assert snapshot(dst)[second] == snapshot(src)[second]
    dst.create_run(make_run(name=src.get_run(first).name))
    with pytest.raises(ConflictError, match=first):
        copy_run(src, dst, src_blobs, dst_blobs, first)


# -- conflicts ----------------------------------------------------------------------------------
def test_a_different_run_with_the_same_name_is_a_conflict(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    blobs = BlobStore(tmp_path / "blobs")
    ours = src.create_run(make_run(name="brave-otter"))
    src.create_run(make_run(name="calm-heron"))
    theirs = dst.create_run(make_run(name="brave-otter"))
    with pytest.raises(ConflictError) as info:
        copy_store(src, dst, blobs, blobs)
    message = str(info.value)
    assert ours.id in message and theirs.id in message and "brave-otter" in message
    assert "nothing was written" in message
    assert [r.id for r in dst.list_runs()] == [theirs.id]


def test_a_status_the_destination_cannot_reach_is_a_conflict(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    blobs = BlobStore(tmp_path / "blobs")
    run = src.create_run(make_run(status=Status.FAILED, ended=5.0))
    dst.create_run(run.replace(status=Status.SUCCEEDED))
    with pytest.raises(ConflictError, match=r"succeeded .* cannot become failed"):
        copy_store(src, dst, blobs, blobs)
    assert dst.get_run(run.id).status is Status.SUCCEEDED


def test_status_paths() -> None:
    assert status_path(Status.RUNNING, Status.RUNNING) == []
    assert status_path(Status.CREATED, Status.SUCCEEDED) == [Status.RUNNING, Status.SUCCEEDED]
    assert status_path(Status.RUNNING, Status.CANCELED) == [Status.CANCELING, Status.CANCELED]
    assert status_path(Status.LOST, Status.FAILED) == [Status.RUNNING, Status.FAILED]
    assert status_path(Status.SUCCEEDED, Status.RUNNING) is None


# -- blobs --------------------------------------------------------------------------------------
def test_a_corrupt_source_blob_is_not_copied(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    run = src.create_run(make_run())
    art = catalog.save_bytes(src, src_blobs, run.id, b"original", "a.txt")
    path = src_blobs.path(art.hash)
    os.chmod(path, 0o600)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=art.hash):
        copy_store(src, dst, src_blobs, dst_blobs)
    assert list(dst_blobs) == []
    assert dst.list_artifacts(run.id) == []


def _blob_stores(tmp_path: Path, src_root: Path | None = None) -> tuple[Any, ...]:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    return src, dst, BlobStore(src_root or tmp_path / "b1"), BlobStore(tmp_path / "b2")


def _leftovers(blobs: BlobStore) -> list[str]:
    return [p.name for p in blobs.root.iterdir() if p.name.startswith(".tmp-")]


def test_a_copy_on_one_file_system_links_the_blobs(tmp_path: Path) -> None:
    src, dst, src_blobs, dst_blobs = _blob_stores(tmp_path)
    run = src.create_run(make_run())
    art = catalog.save_bytes(src, src_blobs, run.id, b"shared", "a.txt")
    assert copy_store(src, dst, src_blobs, dst_blobs).blobs_copied == 1
    assert dst_blobs.path(art.hash).samefile(src_blobs.path(art.hash))
    assert dst_blobs.read_bytes(art.hash) == b"shared"
    assert _leftovers(dst_blobs) == []
    assert dst.list_artifacts(run.id) == [art]


def test_a_linked_copy_still_refuses_a_corrupt_source_blob(tmp_path: Path) -> None:
    src, dst, src_blobs, dst_blobs = _blob_stores(tmp_path)
    run = src.create_run(make_run())
    art = catalog.save_bytes(src, src_blobs, run.id, b"original", "a.txt")
    path = src_blobs.path(art.hash)
    os.chmod(path, 0o600)
    path.write_bytes(b"tampered")
    os.chmod(path, 0o444)  # read-only again: a blob the copy would link
    with pytest.raises(IntegrityError, match=art.hash):
        copy_store(src, dst, src_blobs, dst_blobs)
    assert list(dst_blobs) == []
    assert _leftovers(dst_blobs) == []
    assert dst.list_artifacts(run.id) == []


def test_a_writable_source_blob_is_copied_not_linked(tmp_path: Path) -> None:
    src, dst, src_blobs, dst_blobs = _blob_stores(tmp_path)
    run = src.create_run(make_run())
    art = catalog.save_bytes(src, src_blobs, run.id, b"mine", "a.txt")
    os.chmod(src_blobs.path(art.hash), 0o644)  # linked, a write to it would change both
    assert copy_store(src, dst, src_blobs, dst_blobs).blobs_copied == 1
    assert not dst_blobs.path(art.hash).samefile(src_blobs.path(art.hash))
    assert dst_blobs.read_bytes(art.hash) == b"mine"


def test_blobs_on_another_file_system_are_copied(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system of its own")
    with TemporaryDirectory(dir=shm) as other:
        src, dst, src_blobs, dst_blobs = _blob_stores(tmp_path, Path(other) / "b1")
        run = src.create_run(make_run())
        arts = [catalog.save_bytes(src, src_blobs, run.id, bytes([i]) * 100, f"{i}.bin")
                for i in range(20)]
        assert copy_store(src, dst, src_blobs, dst_blobs).blobs_copied == 20
        for art in arts:
            assert dst_blobs.path(art.hash).stat().st_dev == tmp_path.stat().st_dev
            assert dst_blobs.read_bytes(art.hash) == src_blobs.read_bytes(art.hash)
        assert _leftovers(dst_blobs) == []


def test_lost_blobs_are_restored_and_missing_ones_counted(tmp_path: Path) -> None:
    src, dst = open_store(url_for("memory", tmp_path)), open_store(url_for("memory", tmp_path))
    src_blobs, dst_blobs = BlobStore(tmp_path / "b1"), BlobStore(tmp_path / "b2")
    run = src.create_run(make_run())
    kept = catalog.save_bytes(src, src_blobs, run.id, b"kept", "kept.txt")
    src.add_artifact(run.id, Artifact("gone.txt", "0" * 64, 3))
    assert copy_store(src, dst, src_blobs, dst_blobs) == CopyReport(
        copied=1, blobs_copied=1, blobs_missing=1)
    dst_blobs.path(kept.hash).unlink()
    assert copy_store(src, dst, src_blobs, dst_blobs).blobs_copied == 1
    assert dst_blobs.read_bytes(kept.hash) == b"kept"


# -- by URL, and killed halfway ---------------------------------------------------------------
@pytest.mark.parametrize("kinds", [("file", "sqlite"), ("chunked", "file")])
def test_copy_store_urls(tmp_path: Path, kinds: tuple[str, str]) -> None:
    src_url, dst_url = url_for(kinds[0], tmp_path / "a"), url_for(kinds[1], tmp_path / "b")
    with opened(src_url) as src:
        populate(src, open_context(src_url).blobs, 4)
        expected = snapshot(src)
    assert copy_store_urls(src_url, dst_url).copied == 4
    with opened(dst_url) as dst:
        assert snapshot(dst) == expected
        assert_blobs_present(dst, open_context(dst_url).blobs)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from runyard.core.copy import copy_store_urls

    def progress(done, total):
        if done == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

    copy_store_urls(sys.argv[1], sys.argv[2], progress)
""")


def run_copy(src_url: str, dst_url: str, kill_after_runs: int = -1) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", KILLER, src_url, dst_url,
                             str(kill_after_runs)])


@pytest.mark.parametrize("kinds", [("sqlite", "file"), ("file", "chunked"), ("chunked", "sqlite")])
def test_copy_killed_after_some_runs_completes_on_rerun(
    tmp_path: Path, kinds: tuple[str, str]
) -> None:
    src_url, dst_url = url_for(kinds[0], tmp_path / "a"), url_for(kinds[1], tmp_path / "b")
    with opened(src_url) as src:
        populate(src, open_context(src_url).blobs, 6)
        expected = snapshot(src)
    assert run_copy(src_url, dst_url, kill_after_runs=3).wait(60) == -signal.SIGKILL
    with opened(dst_url) as dst:
        assert len(dst.list_runs()) == 3
    assert copy_store_urls(src_url, dst_url) == CopyReport(unchanged=3, copied=3,
                                                           blobs_copied=3)
    with opened(dst_url) as dst:
        assert snapshot(dst) == expected


def test_copy_killed_at_any_moment_completes_on_rerun(tmp_path: Path) -> None:
    src_url, dst_url = url_for("sqlite", tmp_path / "a"), url_for("file", tmp_path / "b")
    with opened(src_url) as src:
        populate(src, open_context(src_url).blobs, 10)
        expected = snapshot(src)
    delay = 0.4
    for _ in range(12):  # kill it later and later, until a copy finishes on its own
        proc = run_copy(src_url, dst_url)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        if proc.wait(60) == 0:
            break
        delay *= 1.3
    copy_store_urls(src_url, dst_url)
    with opened(dst_url) as dst:
        assert snapshot(dst) == expected
    assert copy_store_urls(src_url, dst_url) == CopyReport(unchanged=10)
