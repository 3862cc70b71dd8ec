"""Deleting a version: its recorded runs, their ``runs/`` folders, and the blobs nothing else
references, for good.

The version is first marked ``deleting`` (so ``core.runs.delete_run`` lets its runs go, and a
crash part way leaves it listed, to be deleted again); each recorded run's ``runs/<name>/``
folder is removed before its run, then the version run itself.

The garbage collection is safe while other processes write. Only the blobs the deleted runs
named are candidates (the manifest, the version's files, the runs' catalogs and the digests
in their records and steps); a candidate is kept if anything still in the store names it:
any run's catalog, any digest in any run's record, steps or attempts (a workflow's internals
and values, an environment's lock), a buffer's chunks, a codespec, another version's
manifest. It is also kept if it is younger
than ``GRACE_S``: a writer that has just put a blob (or found it there, which renews its mtime:
``BlobStore.place`` and the snapshot touch what they reuse) and not yet written the entry that
names it. A blob is removed by renaming it aside first and looking at its mtime again, so one
touched in between is put back rather than lost. If the references cannot all be read (a
damaged manifest), no blob is removed and the report says why.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.core.liveness import refresh
from runyard.core.runs import DELETING
from runyard.errors import ConflictError, RunNotFound, RunyardError
from runyard.model import Kind, RunRecord, Status

if TYPE_CHECKING:
    from runyard.core.context import StoreContext

GRACE_S = 15 * 60.0
_DIGEST = re.compile(r"(?:blake3:)?[0-9a-f]{64}")


@dataclass
class DeleteReport:
    """What ``delete_version`` removed."""

    version: str  # its id
    name: str
    runs: list[str] = field(default_factory=list)  # names of the recorded runs deleted
    folders: list[str] = field(default_factory=list)  # runs/ folders removed
    blobs_removed: int = 0
    bytes_freed: int = 0
    blobs_kept: int = 0  # candidates still referenced elsewhere, or too young
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def delete_version(context: StoreContext, ref: str) -> DeleteReport:
    """Delete version ``ref`` (complete or not) with its recorded runs, their ``runs/``
    folders and the blobs nothing else references (see the module docstring)."""
    from runyard.recording.versions import runs_of

    version = find_version(context, ref)
    store = context.store
    _check_idle(context, version)
    version = store.update_run(version.id, internals={**version.internals, DELETING: True})
    report = DeleteReport(version.id, version.name)
    candidates = _digests_of(context, version, report)
    workspace = version.internals.get("workspace")
    for run in runs_of(context, version):
        candidates |= _named_by(context, run)
        # (a run recorded on this version from another folder keeps its own runs/ there)
        folder = _remove_folder(run.internals.get("workspace") or workspace, run, report)
        with suppress(RunNotFound):  # (a delete of the same version running beside this one)
            store.delete_run(run.id)
        report.runs.append(run.name)
        if folder:
            report.folders.append(folder)
    with suppress(RunNotFound):
        store.delete_run(version.id)
    collect(context, candidates, report)
    return report


def find_version(context: StoreContext, ref: str) -> RunRecord:
    """The version run with id or name ``ref``, complete or not (VersionNotFound if none);
    ConflictError while it is still being created."""
    from runyard.recording.versions import version_run

    run = version_run(context, ref)
    if run.status is Status.RUNNING and not run.internals.get(DELETING):
        raise ConflictError(f"version {run.name} is being created (by pid "
                            f"{run.owner.pid if run.owner else '?'}); wait for it to end")
    return run


def _check_idle(context: StoreContext, version: RunRecord) -> None:
    """ConflictError if a recorded run of ``version`` is still executing."""
    from runyard.recording.versions import runs_of

    for run in runs_of(context, version):
        run = refresh(context.store, run)
        if run.status.is_active and run.status is not Status.CREATED:
            raise ConflictError(f"recorded run {run.name} of version {version.name} is "
                                f"{run.status.value}; cancel it (`runyard run cancel "
                                f"{run.name}`) or let it end, then delete the version")


def _digests_of(context: StoreContext, version: RunRecord, report: DeleteReport) -> set[str]:
    """The blobs ``version`` names: its manifest and its files (if it got that far)."""
    from runyard.recording.versions import read_manifest

    found = _named_by(context, version)
    if isinstance(version.internals.get("manifest"), str):
        try:
            found |= {e.sha256 for e in read_manifest(context, version).values()}
        except RunyardError as exc:
            report.notes.append(f"its manifest could not be read ({exc}); its files' blobs "
                                "are left in the store")
    return found


def _named_by(context: StoreContext, run: RunRecord) -> set[str]:
    """Every digest ``run`` names: its catalog, and any digest in its record or steps."""
    store = context.store
    found = {a.hash for a in store.list_artifacts(run.id)}
    found |= digests_in([run.internals, run.environment, run.metadata, run.resources,
                         run.config, run.parameters, run.code])
    found |= digests_in([[s.metadata, [(a.inputs, a.outputs) for a in s.attempts]]
                         for s in store.get_steps(run.id)])  # (a workflow's values)
    return found


def digests_in(value: Any) -> set[str]:
    """Every string in ``value`` (nested dicts and lists) that is a blob digest."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.update(_DIGEST.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
    return found


def _remove_folder(workspace: Any, run: RunRecord, report: DeleteReport) -> str | None:
    """Remove ``<workspace>/runs/<name>/`` of ``run`` (only ever a folder right under
    ``runs/``); the folder removed, or None."""
    folder = run.internals.get("folder") or f"runs/{run.name}"
    parts = str(folder).split("/")
    if not isinstance(workspace, str) or len(parts) != 2 or parts[0] != "runs" \
            or parts[1] in ("", ".", "..") or "\x00" in parts[1]:
        return None
    path = Path(workspace, "runs", parts[1])
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        _writable(path)
        shutil.rmtree(path)
    except OSError as exc:
        report.notes.append(f"could not remove {path}: {exc}")
        return None
    return str(path)


def _writable(root: Path) -> None:
    """Let the read-only folders of a ``runs/`` mirror be emptied (links never followed)."""
    for folder, _dirs, _files in os.walk(root):
        if not os.path.islink(folder):
            os.chmod(folder, 0o700)


def collect(context: StoreContext, candidates: Iterable[str], report: DeleteReport) -> None:
    """Remove those of ``candidates`` nothing references (see the module docstring)."""
    blobs = context.blobs
    if getattr(blobs, "server", None) is not None:
        report.notes.append("blobs are the server's: it keeps or collects them")
        return
    wanted = set(candidates)
    with suppress(OSError):  # what killed writers left (an hour old: none still writing)
        blobs.remove_stale_temp()
    try:
        referenced = referenced_digests(context)
    except RunyardError as exc:
        report.notes.append(f"no blob removed: the store's references could not be read "
                            f"({exc})")
        return
    report.blobs_kept += len(wanted & referenced)
    for digest in sorted(wanted - referenced):
        freed = _remove_blob(str(blobs.path(digest)))
        if freed is None:
            report.blobs_kept += 1
        elif freed >= 0:
            report.blobs_removed += 1
            report.bytes_freed += freed


def _remove_blob(path: str, now: float | None = None) -> int | None:
    """Remove the blob file at ``path`` unless it is young: the bytes freed, None if kept,
    -1 if it was gone already."""
    now = time.time() if now is None else now
    try:
        if now - os.stat(path).st_mtime < GRACE_S:
            return None
        aside = f"{path}.gc-{os.urandom(6).hex()}"
        os.rename(path, aside)
    except FileNotFoundError:
        return -1
    except OSError:  # (a blob folder this user may not change: the blob is kept)
        return None
    info = os.stat(aside)
    if time.time() - info.st_mtime < GRACE_S:  # touched just now: a writer reuses it
        _put_back(aside, path)
        return None
    os.unlink(aside)
    return info.st_size


def _put_back(aside: str, path: str) -> None:
    """Return a blob set aside to its place (unless it was put again meanwhile)."""
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    except OSError:  # (no hard links here)
        os.replace(aside, path)
        return
    os.unlink(aside)


def referenced_digests(context: StoreContext) -> set[str]:
    """Every digest the store names: runs (catalogs, records, steps and attempts, versions'
    manifests), buffers and codespecs. Raises if a version's manifest cannot be read."""
    from runyard.recording.versions import read_manifest

    store = context.store
    found: set[str] = set()
    for run in store.list_runs(None, newest_first=False):
        found |= _named_by(context, run)
        if run.kind is Kind.VERSION and isinstance(run.internals.get("manifest"), str):
            found |= {e.sha256 for e in read_manifest(context, run).values()}
    for buffer in context.registry.buffers():
        found |= {c.digest for c in context.registry.chunks_after(buffer.id, 0, 0) if c.digest}
    for latest in context.registry.codespecs():
        found |= digests_in([c.spec for c in context.registry.codespecs(latest.name)])
    return found
