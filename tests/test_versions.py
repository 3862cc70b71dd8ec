"""Workspace versions (``runyard.recording.versions``): snapshots kept as runs of kind
``version`` by every store, their manifests, restore, delete and its garbage collection.

Real files, real stores (every backend where the behaviour is a store's), real processes for
the crash; no patches.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from http_helpers import ThreadServer
from runyard.core.context import StoreContext, open_context
from runyard.core.runs import create_run, delete_run
from runyard.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    ValidationError,
    VersionNotFound,
)
from runyard.model import Artifact, Kind, RunRecord, Stage, Status
from runyard.recording.manifest import LINK_MODE, decode, encode
from runyard.recording.versions import (
    FileEntry,
    create_version,
    delete_version,
    diff_versions,
    find_workspace,
    get_version,
    list_versions,
    materialize,
    read_manifest,
    restore,
    runs_of,
)
from runyard.recording.workspace import cache_path
from runyard.stores import RunFilter

HOUR = 3600.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def context(store_url: str, tmp_path: Path) -> StoreContext:
    return open_context(store_url, blobs=tmp_path / "blobs")


@pytest.fixture
def local(tmp_path: Path) -> StoreContext:
    return open_context(f"sqlite://{tmp_path}/store/runyard.db", blobs=tmp_path / "blobs")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "main.py").write_text("print('hi')\n")
    (ws / "data.csv").write_text("a,b\n1,2\n")
    script = ws / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    return ws


def age_blobs(context: StoreContext, seconds: float = HOUR) -> None:
    """Make every blob look written ``seconds`` ago (past the collector's grace period)."""
    past = time.time() - seconds
    for digest in context.blobs.digests():
        os.utime(context.blobs.path(digest), (past, past))


def finished_recorded_run(context: StoreContext, version_id: str, name: str | None = None
                          ) -> RunRecord:
    run = create_run(context.store, name=name, kind=Kind.RECORDED, status=Status.RUNNING,
                     internals={"version": version_id, "folder": f"runs/{name}"})
    return context.store.update_status(run.id, Status.SUCCEEDED)


# -- every store ------------------------------------------------------------------------------
def test_a_version_is_a_succeeded_run_of_kind_version_with_its_manifest(
        context: StoreContext, workspace: Path) -> None:
    version = create_version(context, workspace, name="first", message="the start")
    assert version.kind is Kind.VERSION and version.status is Status.SUCCEEDED
    assert version.description == "the start"
    assert version.internals["files"] == 3 and version.internals["workspace"] == str(workspace)
    assert get_version(context, "first") == get_version(context, version.id) == version
    listed = context.store.list_runs(RunFilter(kind=Kind.VERSION))
    assert [r.id for r in listed] == [v.id for v in list_versions(context)] == [version.id]
    manifest = read_manifest(context, version)
    assert manifest == {
        "data.csv": FileEntry(sha(b"a,b\n1,2\n"), 8, 0o644),
        "run.sh": FileEntry(sha(b"#!/bin/sh\necho run\n"), 19, 0o755),
        "src/main.py": FileEntry(sha(b"print('hi')\n"), 12, 0o644),
    }
    (entry,) = context.store.list_artifacts(version.id)
    assert (entry.name, entry.hash, entry.stage) == (
        "manifest.json", version.internals["manifest"], Stage.PUT)
    for file in manifest.values():
        assert context.blobs.verify(file.sha256)


def test_a_version_or_a_recorded_run_cannot_be_deleted_alone(
        context: StoreContext, workspace: Path) -> None:
    version = create_version(context, workspace, name="kept")
    recorded = finished_recorded_run(context, version.id)
    for run in (version, recorded):
        with pytest.raises(ConflictError, match="runyard version delete kept"):
            delete_run(context.store, run.id)
    assert context.store.get_run(recorded.id) and context.store.get_run(version.id)
    delete_version(context, "kept")
    assert not context.store.list_runs()


def test_deleting_a_version_removes_its_runs_their_folders_and_only_unshared_blobs(
        context: StoreContext, workspace: Path) -> None:
    (workspace / "shared.txt").write_text("also a tracked run's file")
    version = create_version(context, workspace, name="doomed")
    recorded = finished_recorded_run(context, version.id, "rec-1")
    output = context.blobs.put_bytes(b"an output")
    context.store.add_artifact(recorded.id, Artifact("out.txt", output.digest, 9, Stage.PUT))
    mirror = workspace / "runs" / "rec-1"
    mirror.mkdir(parents=True)
    (mirror / "out.txt").write_text("an output")
    (mirror / "out.txt").chmod(0o444)
    mirror.chmod(0o555)
    other = create_run(context.store, name="tracked")
    shared = context.blobs.put_bytes(b"also a tracked run's file")
    context.store.add_artifact(other.id, Artifact("s.txt", shared.digest, 25, Stage.PUT))
    age_blobs(context)
    young = context.blobs.put_bytes(encode({}))  # (a writer's blob, not named yet)
    doomed = {f.sha256 for f in read_manifest(context, version).values()} - {shared.digest}

    report = delete_version(context, "doomed")

    assert report.runs == ["rec-1"] and not mirror.exists()
    assert [r.name for r in context.store.list_runs()] == ["tracked"]
    assert context.blobs.exists(shared.digest) and context.blobs.exists(young.digest)
    gone = doomed | {output.digest, version.internals["manifest"]}
    assert not any(context.blobs.exists(d) for d in gone)
    assert report.blobs_removed == len(gone)


# -- what a scan keeps --------------------------------------------------------------------------
def test_ignored_folders_virtual_environments_and_runyardignore_patterns_are_left_out(
        local: StoreContext, workspace: Path) -> None:
    for folder in (".runyard", "runs/old", ".git", "src/.git", "venv", "src/build"):
        (workspace / folder).mkdir(parents=True, exist_ok=True)
        (workspace / folder / "x").write_text("left out")
    (workspace / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (workspace / "src" / "runs").mkdir()
    (workspace / "src" / "runs" / "kept.txt").write_text("only the top runs/ is left out")
    (workspace / "debug.log").write_text("log")
    (workspace / ".runyardignore").write_text("*.log\nbuild/\n")
    manifest = read_manifest(local, create_version(local, workspace))
    assert sorted(manifest) == [".runyardignore", "data.csv", "run.sh", "src/main.py",
                                "src/runs/kept.txt"]


def test_a_symlink_is_kept_as_a_link_and_never_followed_out_of_the_workspace(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not in the workspace")
    (workspace / "to-secret").symlink_to(outside / "secret")
    (workspace / "to-folder").symlink_to(outside)
    version = create_version(local, workspace)
    manifest = read_manifest(local, version)
    assert manifest["to-secret"] == FileEntry(sha(os.fsencode(outside / "secret")),
                                              len(str(outside / "secret")), LINK_MODE)
    assert manifest["to-folder"].is_link and not any(p.startswith("to-folder/")
                                                     for p in manifest)
    assert not any(sha(b"not in the workspace") == e.sha256 for e in manifest.values())
    dest = restore(local, version.name, tmp_path / "restored")
    assert os.readlink(dest / "to-secret") == str(outside / "secret")


def test_fifos_are_skipped_with_a_note_and_newlines_in_names_survive(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    os.mkfifo(workspace / "pipe")
    (workspace / "two\nlines.txt").write_text("odd name")
    version = create_version(local, workspace)
    assert version.internals["skipped"] == ["'pipe': not a regular file, folder or link "
                                            "(a fifo)"]
    assert "two\nlines.txt" in read_manifest(local, version)
    dest = restore(local, version.id, tmp_path / "out")
    assert (dest / "two\nlines.txt").read_text() == "odd name"


def test_unchanged_files_are_not_read_again_and_a_collected_blob_is_put_again(
        local: StoreContext, workspace: Path) -> None:
    past = time.time() - 10
    for path in workspace.rglob("*"):
        os.utime(path, (past, past))  # older than the cache's racy window
    first = create_version(local, workspace)
    assert first.internals["read"] == 3
    (workspace / "data.csv").write_text("a,b\n3,4\n")
    second = create_version(local, workspace)
    assert second.internals["read"] == 1
    assert diff_versions(local, first.id, second.id).changed == ["data.csv"]
    script = read_manifest(local, second)["run.sh"].sha256
    os.unlink(local.blobs.path(script))  # as a collection would
    third = create_version(local, workspace)
    assert third.internals["read"] == 2  # data.csv (racy: just written) and run.sh
    assert local.blobs.verify(script)


def test_a_file_changing_while_it_is_read_is_stored_as_its_hash_says_or_refused(
        local: StoreContext, workspace: Path) -> None:
    busy = workspace / "busy.bin"
    busy.write_bytes(os.urandom(8 << 20))
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os, sys\n"
        "while True:\n"
        "    with open(sys.argv[1], 'r+b') as f:\n"
        "        f.write(os.urandom(1 << 16))\n"), str(busy)])
    try:
        for _ in range(3):
            try:
                version = create_version(local, workspace)
            except ValidationError as exc:
                assert "kept changing while it was read" in str(exc)
                continue
            entry = read_manifest(local, version)["busy.bin"]
            assert local.blobs.hash_of(entry.sha256) == entry.sha256
            assert local.blobs.size(entry.sha256) == entry.size
    finally:
        writer.kill()
        writer.wait()


# -- crashes, bad input --------------------------------------------------------------------------
def test_a_create_killed_midway_leaves_a_lost_version_that_is_never_used_and_deletes(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    for i in range(400):
        (workspace / f"big{i}.bin").write_bytes(os.urandom(1 << 18))
    code = ("import sys; from pathlib import Path\n"
            "from runyard.core.context import open_context\n"
            "from runyard.recording.versions import create_version\n"
            "c = open_context(sys.argv[1], blobs=sys.argv[2])\n"
            "create_version(c, Path(sys.argv[3]), name='half')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, local.url, str(local.blob_root),
                             str(workspace)])
    try:
        deadline = time.monotonic() + 30
        while not local.store.list_runs(RunFilter(kind=Kind.VERSION)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (version,) = list_versions(local)
    assert version.status is Status.LOST
    with pytest.raises(VersionNotFound, match="lost, never completed"):
        get_version(local, "half")
    delete_version(local, "half")
    assert not local.store.list_runs()


def test_unknown_versions_other_runs_and_missing_workspaces_are_refused(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    tracked = create_run(local.store, name="not-a-version")
    with pytest.raises(VersionNotFound, match="'nope'"):
        get_version(local, "nope")
    with pytest.raises(VersionNotFound, match="is a tracked run"):
        get_version(local, tracked.name)
    with pytest.raises(VersionNotFound):
        delete_version(local, tracked.name)
    with pytest.raises(NotFoundError, match="does not exist"):
        create_version(local, tmp_path / "missing")
    with pytest.raises(ValidationError, match="not a folder"):
        find_workspace(workspace / "data.csv")


def test_the_workspace_is_the_folder_holding_runyard_yaml(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / "runyard.yaml").write_text("{}\n")
    monkeypatch.chdir(workspace / "src")
    assert find_workspace() == workspace.resolve()


# -- restore and materialize -------------------------------------------------------------------
def test_restore_keeps_modes_and_refuses_a_file_or_a_folder_that_is_not_empty(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    version = create_version(local, workspace, name="r")
    dest = restore(local, "r", tmp_path / "a" / "b")
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert (dest / "src" / "main.py").read_text() == "print('hi')\n"
    with pytest.raises(ConflictError, match="not empty"):
        restore(local, "r", dest)
    with pytest.raises(ValidationError, match="not a folder"):
        restore(local, "r", dest / "run.sh")
    assert restore(local, version.id, dest, force=True) == dest


def test_a_forced_restore_replaces_links_in_its_way_and_never_writes_through_them(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    create_version(local, workspace, name="r")
    victim = tmp_path / "victim"
    victim.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "src").symlink_to(victim)  # a folder of the version, as a link out
    (dest / "data.csv").symlink_to(victim / "data.csv")
    restore(local, "r", dest, force=True)
    assert list(victim.iterdir()) == []
    assert (dest / "src").is_dir() and not (dest / "src").is_symlink()
    assert (dest / "data.csv").read_text() == "a,b\n1,2\n"


def test_materialized_inputs_are_read_only_copies_never_links_to_blobs(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    manifest = read_manifest(local, create_version(local, workspace))
    materialize(local, manifest, tmp_path / "job", read_only=True)
    copy = tmp_path / "job" / "run.sh"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o555
    blob = local.blobs.path(manifest["run.sh"].sha256)
    assert copy.stat().st_ino != blob.stat().st_ino and copy.stat().st_nlink == 1


def test_a_manifest_naming_paths_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    entry = {"sha256": "0" * 64, "size": 0, "mode": 0o644}
    for files in ({"../escape": entry}, {"/abs": entry}, {"a/./b": entry},
                  {"a": entry, "a/b": entry}):
        with pytest.raises(IntegrityError):
            decode(json.dumps({"format": 1, "files": files}).encode())


# -- the garbage collection beside writers --------------------------------------------------------
def test_a_blob_put_again_by_another_writer_survives_the_collection(
        local: StoreContext, workspace: Path) -> None:
    create_version(local, workspace, name="old")
    age_blobs(local)
    reused = local.blobs.put_bytes(b"a,b\n1,2\n")  # a writer about to name data.csv's blob
    report = delete_version(local, "old")
    assert local.blobs.exists(reused.digest)
    assert report.blobs_removed == 3 and report.blobs_kept == 1  # 2 files and the manifest


def test_a_version_made_while_another_is_deleted_keeps_every_blob_it_names(
        local: StoreContext, workspace: Path) -> None:
    past = time.time() - 10
    for path in workspace.rglob("*"):
        os.utime(path, (past, past))
    create_version(local, workspace, name="a")
    age_blobs(local)
    b = create_version(local, workspace, name="b")  # from the stat cache: nothing read
    assert b.internals["read"] == 0
    delete_version(local, "a")
    for entry in read_manifest(local, get_version(local, "b")).values():
        assert local.blobs.verify(entry.sha256)


def test_runs_of_lists_the_recorded_runs_of_that_version_only(
        local: StoreContext, workspace: Path) -> None:
    one, two = create_version(local, workspace), create_version(local, workspace)
    mine = create_run(local.store, kind=Kind.RECORDED, internals={"version": one.id})
    create_run(local.store, kind=Kind.RECORDED, internals={"version": two.id})
    assert [r.id for r in runs_of(local, one)] == [mine.id]


# -- a runyard server as the store ---------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadServer]:
    for var, folder in (("XDG_CACHE_HOME", "cache"), ("RUNYARD_CONFIG_HOME", "config"),
                        ("RUNYARD_SPOOL", "spool")):
        monkeypatch.setenv(var, str(tmp_path / folder))
    monkeypatch.delenv("RUNYARD_BLOBS", raising=False)
    live = ThreadServer(tmp_path / "server").start()
    monkeypatch.setenv("RUNYARD_TOKEN", live.token)
    try:
        yield live
    finally:
        live.stop()


def test_a_version_made_over_a_server_is_kept_there_and_its_delete_refuses_a_run_alone(
        server: ThreadServer, workspace: Path) -> None:
    context = open_context(server.url)
    version = create_version(context, workspace, name="remote")
    held = server.context
    assert held.store.get_run(version.id).status is Status.SUCCEEDED
    for entry in read_manifest(held, get_version(held, "remote")).values():
        assert held.blobs.verify(entry.sha256)
    recorded = create_run(context.store, kind=Kind.RECORDED, internals={"version": version.id})
    with pytest.raises(ConflictError, match="runyard version delete remote"):
        context.store.delete_run(recorded.id)  # the server's DELETE /runs/{id} refuses it
    report = delete_version(context, "remote")
    assert report.runs == [recorded.name] and not held.store.list_runs()
    assert report.notes == ["blobs are the server's: it keeps or collects them"]


def test_a_version_whose_recorded_run_is_running_is_not_deleted(
        local: StoreContext, workspace: Path) -> None:
    version = create_version(local, workspace, name="busy")
    create_run(local.store, name="still-going", kind=Kind.RECORDED, status=Status.RUNNING,
               internals={"version": version.id})  # (owned by no one: cannot be found lost)
    with pytest.raises(ConflictError, match="still-going of version busy is running"):
        delete_version(local, "busy")
    assert get_version(local, "busy").internals.get("deleting") is None


def test_the_blob_folder_inside_the_workspace_is_left_out(tmp_path: Path, workspace: Path
                                                          ) -> None:
    inside = open_context(f"sqlite://{tmp_path}/store/runyard.db", blobs=workspace / "blobs")
    first = create_version(inside, workspace)
    second = create_version(inside, workspace)
    assert sorted(read_manifest(inside, second)) == sorted(read_manifest(inside, first)) == [
        "data.csv", "run.sh", "src/main.py"]


def test_a_stat_cache_naming_something_else_than_a_digest_is_not_believed(
        local: StoreContext, workspace: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.utime(victim, (1, 1))
    past = time.time() - 10
    for path in workspace.rglob("*"):
        os.utime(path, (past, past))
    create_version(local, workspace)
    cache_file = cache_path(workspace, local.blobs.root.parent)
    cache = json.loads(cache_file.read_text())
    rel = os.path.relpath(victim, local.blobs.root)
    cache["data.csv"][3] = rel[:2] + "/" + rel[2:]  # a "digest" that walks out to victim
    cache_file.write_text(json.dumps(cache))
    version = create_version(local, workspace)
    assert version.internals["read"] == 1 and victim.stat().st_mtime == 1
    assert read_manifest(local, version)["data.csv"].sha256 == sha(b"a,b\n1,2\n")


def test_a_blob_a_workflow_step_or_a_buffer_names_survives_the_collection(
        local: StoreContext, workspace: Path) -> None:
    from runyard.model import Attempt, Step
    from runyard.model.registry import Chunk

    create_version(local, workspace, name="v")
    code = sha(b"print('hi')\n")
    data = sha(b"a,b\n1,2\n")
    workflow = create_run(local.store, kind=Kind.WORKFLOW)
    local.store.upsert_step(workflow.id, Step("t", attempts=(
        Attempt(1, outputs={"result": {"digest": code}}),)))
    buffer = local.registry.create_buffer()
    local.registry.claim(buffer.id, None)
    local.registry.add_chunk(buffer.id, Chunk(0, 0, data, 8))
    age_blobs(local)
    report = delete_version(local, "v")
    assert local.blobs.exists(code) and local.blobs.exists(data)
    assert report.blobs_removed == 2  # run.sh and the manifest


def test_a_folder_swapped_for_a_link_after_the_scan_is_not_read_through(
        workspace: Path, tmp_path: Path) -> None:
    from runyard.recording.workspace import Folders, scan

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main.py").write_text("not the workspace's")
    found = scan(workspace)
    assert "src/main.py" in [f.path for f in found.files]
    (workspace / "src" / "main.py").unlink()
    (workspace / "src").rmdir()
    (workspace / "src").symlink_to(outside)  # swapped between the scan and the read
    folders = Folders(str(workspace))
    try:
        with pytest.raises(OSError):
            folders.fd("src")
        assert folders.fd("") == folders.root
    finally:
        folders.close()


def test_a_delete_cut_short_leaves_a_version_no_one_uses_and_deleting_again_ends_it(
        local: StoreContext, workspace: Path) -> None:
    version = create_version(local, workspace, name="half-deleted")
    finished_recorded_run(local, version.id, "rec")
    local.store.update_run(version.id, internals={**version.internals, "deleting": True})
    with pytest.raises(VersionNotFound, match="being deleted"):
        get_version(local, "half-deleted")
    report = delete_version(local, "half-deleted")
    assert report.runs == ["rec"] and not local.store.list_runs()


def test_a_version_leaves_no_runyard_folder_in_a_workspace_below_the_store_home(
        tmp_path: Path) -> None:
    """The stat cache lives beside the blobs, not in the workspace: a ``.runyard`` folder
    there would become the nearest home, and the next command would open another store."""
    home_store = open_context(f"sqlite://{tmp_path}/.runyard/runyard.db")
    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "a.txt").write_text("a")
    create_version(home_store, paper, name="p1")
    create_version(home_store, paper, name="p2")
    assert not (paper / ".runyard").exists()
    assert cache_path(paper, home_store.blobs.root.parent).is_file()
