"""Versions of a workspace: immutable snapshots kept as runs of kind ``version``.

A version is a run like any other, so every store keeps it with no method of its own and every
tool shows it. It is created ``running`` with this process as its owner, filled (contents into
the blob store, then the manifest blob: ``runyard.recording.snapshot``), and only then made
``succeeded`` with ``internals = {"manifest": digest, "workspace": path, "files": n, "bytes":
total}`` and one catalog entry, ``manifest.json``. A create that is killed leaves its run
``running`` with a dead owner, which readers turn ``lost`` (``core.liveness``); a version that
did not succeed is never used (``get_version`` refuses it) and ``delete_version`` removes it.

This module is the API the other parts of recording use: ``find_workspace``,
``create_version``, ``get_version``, ``list_versions``, ``read_manifest``, ``materialize``,
``runs_of``, ``delete_version``, ``diff_versions``, ``restore``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.core.lease import Lease
from runyard.core.liveness import refresh
from runyard.core.runs import DELETING, create_run
from runyard.errors import RunNotFound, VersionNotFound
from runyard.model import Artifact, Kind, RunRecord, Stage, Status
from runyard.processes.owners import this_owner
from runyard.recording.collect import DeleteReport, delete_version
from runyard.recording.manifest import FileEntry, Manifest, ManifestDiff, decode, diff, encode
from runyard.recording.materialize import materialize, restore
from runyard.recording.snapshot import snapshot
from runyard.recording.workspace import find_workspace, ignore_rules
from runyard.stores import RunFilter

if TYPE_CHECKING:
    from runyard.core.context import StoreContext

__all__ = [
    "DeleteReport", "FileEntry", "Manifest", "create_version", "delete_version",
    "diff_versions", "find_workspace", "get_version", "list_versions", "materialize",
    "read_manifest", "restore", "runs_of",
]

HEARTBEAT_S = 20.0
MANIFEST_NAME = "manifest.json"


def create_version(context: StoreContext, workspace: Path, *, name: str | None = None,
                   message: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> RunRecord:
    """Snapshot ``workspace`` as a new version (see the module docstring); the version run,
    ``succeeded``. Notes on what was left out are in ``internals["skipped"]``; how many files
    were read (not known unchanged from the stat cache) in ``internals["read"]``.
    ``progress(files done, files in all)`` is called now and then while it works."""
    folder = find_workspace(workspace)
    ignore_rules(folder)  # (a bad .runyardignore is refused before any run is made)
    run = create_run(context.store, name=name, kind=Kind.VERSION, status=Status.RUNNING,
                     description=message, owner=this_owner(), heartbeat=time.time(),
                     config={"heartbeat_interval": HEARTBEAT_S},
                     internals={"workspace": str(folder)})
    lease = Lease(context.store, run.id, heartbeat_s=HEARTBEAT_S, cancel_check_s=None)
    try:
        def tick(done: int, total: int) -> None:
            lease.tick()
            if progress is not None:
                progress(done, total)

        made = snapshot(context.blobs, folder, tick)
        ref = context.blobs.put_bytes(encode(made.manifest))
        context.store.add_artifact(run.id, Artifact(MANIFEST_NAME, ref.digest, ref.size,
                                                    Stage.PUT))
        internals = {"manifest": ref.digest, "workspace": str(folder),
                     "files": len(made.manifest), "bytes": made.bytes,
                     "skipped": made.skipped, "read": made.read}
        return lease.end(Status.SUCCEEDED, internals=internals)
    except BaseException as exc:
        with suppress(Exception):  # the original error matters more than this one
            lease.end(Status.FAILED, " ".join(f"{type(exc).__name__}: {exc}".split())[:500])
        raise


def version_run(context: StoreContext, ref: str) -> RunRecord:
    """The run of kind ``version`` with id or name ``ref``, complete or not, its liveness
    brought up to date; VersionNotFound if there is none."""
    try:
        run = context.store.find_run(ref)
    except RunNotFound:
        raise VersionNotFound(ref) from None
    if run.kind is not Kind.VERSION:
        raise VersionNotFound(ref, f"{run.name} is a {run.kind.value} run")
    return refresh(context.store, run)


def get_version(context: StoreContext, ref: str) -> RunRecord:
    """The complete version with id or name ``ref``; VersionNotFound otherwise (no such run,
    not a version, one that never completed, or one being deleted)."""
    run = version_run(context, ref)
    if run.internals.get(DELETING):
        raise VersionNotFound(ref, f"version {run.name} is being deleted")
    if run.status is not Status.SUCCEEDED or not run.internals.get("manifest"):
        raise VersionNotFound(ref, f"version {run.name} is {run.status.value}, never "
                              "completed; remove it with `runyard version delete`")
    return run


def list_versions(context: StoreContext) -> list[RunRecord]:
    """Every version, newest first, complete or not (a crashed create shows ``lost``)."""
    runs = context.store.list_runs(RunFilter(kind=Kind.VERSION), newest_first=True)
    return [refresh(context.store, run) for run in runs]


def read_manifest(context: StoreContext, version: RunRecord) -> Manifest:
    """The manifest of ``version`` (read from the blob store, its hash checked)."""
    digest = version.internals.get("manifest")
    if not isinstance(digest, str):
        raise VersionNotFound(version.name, "it has no manifest: it never completed")
    with context.blobs.open(digest, verify=True) as handle:
        data = handle.read()
    return decode(data, f"the manifest of version {version.name}")


def runs_of(context: StoreContext, version: RunRecord) -> list[RunRecord]:
    """The recorded runs of ``version``, oldest first."""
    runs = context.store.list_runs(RunFilter(kind=Kind.RECORDED), newest_first=False)
    return [run for run in runs if run.internals.get("version") == version.id]


def diff_versions(context: StoreContext, old: str, new: str) -> ManifestDiff:
    """How version ``new`` differs from version ``old``, path by path."""
    before = read_manifest(context, get_version(context, old))
    return diff(before, read_manifest(context, get_version(context, new)))
