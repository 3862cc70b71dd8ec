"""Import an exported version with its recorded runs: everything checked, then all of it.

An import first proves the bundle intact and then writes; a bundle that fails any check
leaves the store as it was (one ``IntegrityError`` line). In order:

1. unpack the zip into a temporary folder beside the blobs, refusing unsafe members and
   counting sizes as they come out (``recording.safezip.extract``);
2. ``bagit`` verifies the SHA-512 of every payload and tag file (``verify_bag``);
3. ``runyard/bundle.json`` is read and checked (``recording.bundle.decode``);
4. every file it lists is hashed into a temporary blob store and must match its SHA-256, and
   every blob the runs name (the manifest, its files, every catalog entry) must be there
   with the size the catalog gives;
5. the runs are checked against the store: a different run holding one of their names is a
   ``ConflictError`` (names are kept, never suffixed: rename yours and import again).

Then the blobs go into the store's blob store and each run (the version first) is copied in
with ``core.copy.copy_run``, ids, names, times and statuses kept: a run that is there already
is brought up to date, so importing twice changes nothing, and an import killed halfway is
completed by importing again. A run already imported and renamed since keeps its new name.
No ``runs/`` folder is made: the exporter's workspace is not here.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.blobs import BlobRef, BlobStore
from runyard.blobs.local import touch
from runyard.core.copy import copy_run
from runyard.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RunNotFound,
    StoreError,
)
from runyard.model import RunRecord, status_path
from runyard.recording import bundle as fmt
from runyard.recording.manifest import decode as decode_manifest
from runyard.recording.safezip import extract, verify_bag
from runyard.stores import RunStore, open_store

if TYPE_CHECKING:
    from runyard.core.context import StoreContext

SCRATCH = ".import-"  # the folders imports unpack into, beside the blobs
STALE_S = 86_400.0


@dataclass(frozen=True)
class ImportReport:
    """What an import did: the version, its runs, and how many of them were new."""

    version_id: str
    version_name: str
    runs: tuple[str, ...]  # the recorded runs' ids
    created: int
    updated: int
    unchanged: int
    blobs_copied: int

    def to_json(self) -> dict[str, Any]:
        return {"version": {"id": self.version_id, "name": self.version_name},
                "runs": list(self.runs), "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "blobs_copied": self.blobs_copied}


def import_bundle(context: StoreContext, path: Path) -> ImportReport:
    """Check the export at ``path`` whole, then bring its version and runs into the store."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no file {path} to import; give the path of an export zip")
    scratch = context.blob_root.parent
    scratch.mkdir(parents=True, exist_ok=True)
    _sweep(scratch)
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=scratch) as tmp:
        bag = Path(tmp) / "bag"
        bag.mkdir()
        extract(path, bag)
        verify_bag(path, bag)
        data = bag / "data"
        bundle = fmt.decode(_read(path, data / fmt.PATH), str(path))
        staged = BlobStore(Path(tmp) / "blobs")
        _stage(path, data, bundle, staged)
        _check_complete(path, bundle, staged)
        return _bring_in(context, bundle, staged, Path(tmp) / "store")


def _sweep(scratch: Path) -> None:
    """Remove the folders of imports killed long ago (a day: none can still be running)."""
    cutoff = time.time() - STALE_S
    for folder in scratch.glob(SCRATCH + "*"):
        with suppress(OSError):
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)


def _read(path: Path, file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise _bad(path, f"it has no data/{fmt.PATH}: it is not a runyard export") from None


def _stage(path: Path, data: Path, bundle: fmt.Bundle, staged: BlobStore) -> None:
    """Hash every listed file and link it into ``staged`` under its digest (no copy: it is
    the same folder); each must match, and nothing else be there."""
    listed = set(bundle.files) | {fmt.PATH, fmt.CRATE_PATH}
    for file in data.rglob("*"):
        name = file.relative_to(data).as_posix()
        if file.is_file() and name not in listed:
            raise _bad(path, f"data/{name} is not listed in {fmt.PATH}")
    for name, digest in sorted(bundle.files.items()):
        file = data / name
        if not file.is_file() or file.is_symlink():
            raise _bad(path, f"data/{name} is missing or not a file")
        with open(file, "rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
        if actual != digest:
            raise _bad(path, f"data/{name} hashes to {actual}, not {digest}")
        staged.place(file, BlobRef(digest, file.stat().st_size))


def _check_complete(path: Path, bundle: fmt.Bundle, staged: BlobStore) -> None:
    """Every blob the version and its runs name is there, with the size they give."""
    version = bundle.version.run
    manifest_digest = version.internals["manifest"]
    if not staged.exists(manifest_digest):
        raise _bad(path, f"the version's manifest {manifest_digest} is missing")
    with staged.open(manifest_digest) as handle:
        manifest = decode_manifest(handle.read(), f"{path}: the version's manifest")
    wanted = [(e.sha256, e.size, f"workspace/{p}") for p, e in manifest.items()]
    wanted += [(a.hash, a.size, f"{log.run.name}'s {a.name}")
               for log in bundle.all_runs() for a in log.artifacts]
    for digest, size, what in wanted:
        if not staged.exists(digest):
            raise _bad(path, f"the blob of {what} ({digest}) is missing")
        if staged.size(digest) != size:
            raise _bad(path, f"{what} should be {size} bytes, not {staged.size(digest)}")


def _bring_in(context: StoreContext, bundle: fmt.Bundle, staged: BlobStore,
              folder: Path) -> ImportReport:
    dst = context.store
    logs = [_keep_name(dst, _elsewhere(dst, log)) for log in bundle.all_runs()]
    src = open_store(f"file://{folder}")
    try:
        for log in logs:
            _fill(src, log)
        runs = [log.run for log in logs]
        holders = _holders(dst, runs)
        _check_conflicts(runs, holders)
        for log in logs:
            if log.run.id in holders and not _same_catalog(dst, log):
                raise ConflictError(
                    f"cannot import run {log.run.id} ({log.run.name!r}): this store has it "
                    "with other files in its catalog; nothing was imported")
        copied = _copy_blobs(staged, context.blobs)
        reports = [copy_run(src, dst, staged, context.blobs, run.id) for run in runs]
    finally:
        src.close()
    version = bundle.version.run
    return ImportReport(version.id, logs[0].run.name, tuple(log.run.id for log in bundle.runs),
                        sum(r.copied for r in reports), sum(r.updated for r in reports),
                        sum(r.unchanged for r in reports),
                        copied + sum(r.blobs_copied for r in reports))


def _elsewhere(dst: RunStore, log: fmt.RunLog) -> fmt.RunLog:
    """The run without the exporter's workspace path, kept as ``exported_from``: that folder
    is on another machine, and a path here of the same name is not this run's (rename and
    version delete act on ``<workspace>/runs/`` only for a run recorded here). A run this
    store has already keeps its own internals (an export brought home changes nothing)."""
    try:
        internals = dict(dst.get_run(log.run.id).internals)
    except RunNotFound:
        internals = dict(log.run.internals)
        if "workspace" not in internals:
            return log
        internals["exported_from"] = internals.pop("workspace")
    return fmt.RunLog(log.run.replace(internals=internals), log.steps, log.artifacts,
                      log.metrics, log.events, log.logs)


def _keep_name(dst: RunStore, log: fmt.RunLog) -> fmt.RunLog:
    """The run named as it is in the store already (a user may have renamed it there)."""
    with suppress(RunNotFound):
        there = dst.get_run(log.run.id)
        if there.name != log.run.name:
            return fmt.RunLog(log.run.replace(name=there.name), log.steps, log.artifacts,
                              log.metrics, log.events, log.logs)
    return log


def _fill(src: RunStore, log: fmt.RunLog) -> None:
    """Write one run of the bundle into the temporary store the copy reads from."""
    run_id = log.run.id
    src.create_run(log.run)
    if log.steps:
        src.upsert_steps(run_id, log.steps)
    if log.metrics:
        src.append_metrics(run_id, log.metrics)
    if log.events:
        src.append_events(run_id, log.events)
    if log.logs:
        src.append_logs(run_id, log.logs)
    if log.artifacts:
        src.add_artifacts(run_id, log.artifacts)


def _check_conflicts(runs: list[RunRecord], holders: dict[str, RunRecord]) -> None:
    """``ConflictError`` if another run holds one of the names, or the store has a run of
    the same id that is not this one (another kind or creation time, a status it cannot
    reach, a catalog entry the export does not have): an import never rewrites a run it did
    not make. Nothing is written then."""
    names = {run.name: run.id for run in holders.values()}
    for run in runs:
        owner = names.get(run.name, run.id)
        if owner != run.id:
            raise ConflictError(
                f"cannot import run {run.id}: this store has a different run {owner} named "
                f"{run.name!r}; rename that one (`runyard run rename`) and import again "
                "(nothing was imported)")
        there = holders.get(run.id)
        if there is not None and not _same_run(there, run):
            raise ConflictError(
                f"cannot import run {run.id} ({run.name!r}): this store has a different run "
                "with that id; nothing was imported")


def _same_run(there: RunRecord, run: RunRecord) -> bool:
    """Whether ``there`` is ``run`` imported before (perhaps partly: a killed import)."""
    return (there.kind is run.kind and there.created == run.created
            and status_path(there.status, run.status) is not None)


def _same_catalog(dst: RunStore, log: fmt.RunLog) -> bool:
    """The store's catalog of the run holds nothing the export's does not."""
    wanted = {(a.name, a.stage): a.hash for a in log.artifacts}
    return all(wanted.get((a.name, a.stage)) == a.hash for a in dst.list_artifacts(log.run.id))


def _holders(dst: RunStore, runs: list[RunRecord]) -> dict[str, RunRecord]:
    """The store's runs with the ids or the names of ``runs``, by id."""
    found = {}
    for run in runs:
        for lookup, key in ((dst.get_run, run.id), (dst.get_run_by_name, run.name)):
            with suppress(RunNotFound):
                there = lookup(key)
                found[there.id] = there
    return found


def _copy_blobs(staged: BlobStore, blobs: BlobStore) -> int:
    """Every staged blob into the store's blob store (those it lacks), made durable at once;
    how many were written. One there already has its mtime renewed, so a garbage collection
    running now (``recording.collect``) keeps it until the runs that name it are in."""
    batch = blobs.batch()
    try:
        for digest in staged.digests():
            if blobs.exists(digest):
                touch(blobs.path(digest))
            elif digest not in batch:
                with staged.open(digest) as stream:
                    batch.put_stream(stream, expect=digest)
        count = len(batch)
        failed = batch.commit()
    except BaseException:
        batch.discard()
        raise
    if failed:
        digest, why = next(iter(failed.items()))
        raise StoreError(f"cannot write blob {digest} into {blobs.root}: {why}; check the "
                         "disk and import again (it resumes)")
    return count


def _bad(path: Path, why: str) -> IntegrityError:
    return IntegrityError(f"cannot import {path}: {why}; it is damaged or was tampered with, "
                          "and nothing was imported")
