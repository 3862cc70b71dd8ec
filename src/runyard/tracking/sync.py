"""``sync``: upload the offline spool's runs to a store, exactly once, resumably.

Each spool run is copied with ``runyard.core.copy.copy_run``: a run missing from the
destination is created, a run already there gets only what it lacks (the append-only metrics,
events and logs by their missing tail), so syncing twice writes nothing twice and a sync
killed halfway completes when run again. A run is removed from the spool only when it was
already closed (a final status) before its copy began and the destination then holds all of
it; running and lost runs stay, to be synced again. One sync at a time holds the spool's lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from runyard.blobs import BlobStore
from runyard.core import liveness
from runyard.core.context import context_of
from runyard.core.copy import copy_run
from runyard.errors import ConfigError, ConflictError
from runyard.model import RunRecord
from runyard.stores import RunStore, open_store, resolve_url
from runyard.stores.location import parse_url, redact_url
from runyard.tracking.spool import Spool

Progress = Callable[[int, int], None]


@dataclass
class SyncReport:
    """What a sync did: runs uploaded, removed from the spool, kept there (still open),
    and runs it could not upload (one message each)."""

    destination: str
    uploaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    blobs_copied: int = 0


def sync(to: str | None = None, *, spool: Spool | None = None,
         progress: Progress | None = None) -> SyncReport:
    """Upload every run of the offline spool to the store ``to`` (default: the configured)."""
    spool = spool or Spool()
    url = resolve_url(to)
    check_not_spool(url, spool)  # (also says what is wrong with a URL that is no store's)
    if not spool.exists():
        return SyncReport(url)
    with spool.sync_lock():
        src = open_store(spool.url)
        try:
            dst = open_store(url)
            try:
                return _sync_all(spool, src, dst, progress)
            finally:
                dst.close()
        finally:
            src.close()


def check_not_spool(url: str, spool: Spool) -> None:
    """A ConfigError if the store at ``url`` lives in the spool's folder, however the URL
    spells the path (a symlink, a relative path, ``..``, another backend's scheme), or in
    memory: syncing into either would delete the runs it uploads."""
    parsed = parse_url(url)
    if parsed.scheme == "memory":
        raise ConfigError(
            f"cannot sync the offline spool into {url}: a memory store ends with its process, "
            "and the runs would be gone from the spool too; sync into a store on disk or a "
            "server"
        )
    if parsed.scheme not in ("file", "chunked", "sqlite"):
        return
    target = Path(parsed.target)
    beside = target.parent if parsed.scheme == "sqlite" else target
    if any(_inside(place, spool.root) for place in (target, beside / "blobs")):
        raise ConfigError(
            f"cannot sync the offline spool into {redact_url(url)}: that store is inside the "
            f"spool itself ({spool.root}); give another store with --to"
        )


def _inside(place: Path, root: Path) -> bool:
    """Whether ``place`` is ``root`` or below it, by real path or by the folders' identity
    (a bind mount or a hard-linked alias has another path but the same device and inode)."""
    real, top = Path(os.path.realpath(place)), Path(os.path.realpath(root))
    try:
        identity = os.stat(top)
    except OSError:
        identity = None
    for folder in (real, *real.parents):
        if folder == top:
            return True
        with suppress(OSError):
            if identity is not None and os.path.samestat(os.stat(folder), identity):
                return True
    return False


def _sync_all(spool: Spool, src: RunStore, dst: RunStore,
              progress: Progress | None) -> SyncReport:
    report = SyncReport(dst.url)
    runs = src.list_runs(newest_first=False)
    dst_blobs = context_of(dst).blobs
    if progress is not None:
        progress(0, len(runs))
    for done, run in enumerate(runs, 1):
        try:
            _sync_one(spool, src, dst, dst_blobs, run, report)
        except ConflictError as exc:
            report.conflicts.append(str(exc))
        if progress is not None:
            progress(done, len(runs))
    spool.remove_orphan_blobs(src)
    return report


def _sync_one(spool: Spool, src: RunStore, dst: RunStore, dst_blobs: BlobStore, run: RunRecord,
              report: SyncReport) -> None:
    run = liveness.refresh(src, run)  # an offline owner that died makes its run lost
    closed = run.status.is_final  # read before copying: all of a closed run is in the spool
    copied = copy_run(src, dst, spool.blobs(run.id), dst_blobs, run.id)
    report.uploaded.append(run.id)
    report.blobs_copied += copied.blobs_copied
    if closed and complete(src, dst, run.id):
        spool.remove(src, run.id)
        report.removed.append(run.id)
    else:
        report.kept.append(run.id)


def complete(src: RunStore, dst: RunStore, run_id: str) -> bool:
    """Whether ``dst`` holds everything ``src`` has of the run."""
    mine, theirs = src.get_run(run_id), dst.get_run(run_id)
    if mine.status is not theirs.status or not mine.tags <= theirs.tags:
        return False
    counts = [(s.name, s.count) for s in src.metric_summaries(run_id)]
    if counts != [(s.name, s.count) for s in dst.metric_summaries(run_id)]:
        return False
    if len(src.read_events(run_id)) != len(dst.read_events(run_id)):
        return False
    wanted = {(a.name, a.stage, a.hash) for a in src.list_artifacts(run_id)}
    return wanted <= {(a.name, a.stage, a.hash) for a in dst.list_artifacts(run_id)}
