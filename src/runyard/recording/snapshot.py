"""Snapshotting a workspace into the blob store: the manifest of a new version.

Each file is read once: copied into the blob store while it is hashed (``BlobBatch``: every
file of the version made durable together, not one fsync per file), so the digest is always
that of the bytes stored. A file whose size or mtime changed while it was read is read again
(``RETRIES`` times, then refused): the version holds what a file held at one moment. A file
the stat cache knows unchanged is not read at all; its blob is touched instead (its mtime
renewed), so a garbage collection running meanwhile sees it young and keeps it
(``runyard.recording.collect``), and a blob that is gone is put again.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.blobs import BlobStore
from runyard.blobs.batch import BlobBatch
from runyard.errors import ValidationError
from runyard.recording import workspace as ws
from runyard.recording.manifest import LINK_MODE, FileEntry, Manifest

RETRIES = 3
TICK_EVERY = 64  # files between two looks at the lease's heartbeat
TOUCH_AGE_S = 60.0  # far below the collector's grace period (15 minutes)
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass
class Snapshot:
    manifest: Manifest  # (in no particular order: ``encode`` sorts it)
    skipped: list[str]
    read: int  # files read (not known from the stat cache)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.manifest.values())


def snapshot(blobs: BlobStore, workspace: Path,
             tick: Callable[[int, int], object] = lambda done, total: None) -> Snapshot:
    """Put every file of ``workspace`` into ``blobs``; the manifest (see the module doc).
    The blob folder and the stat caches beside it are left out if they are inside the
    workspace. ``tick(done, total)`` is
    called every ``TICK_EVERY`` files (files looked at so far, files in all)."""
    started = time.time_ns()
    found = ws.scan(workspace, exclude=[blobs.root, blobs.root.parent / ws.CACHE_FOLDER])
    cache = ws.load_cache(workspace, blobs.root.parent)
    made = Snapshot({}, list(found.skipped), 0)
    fresh: dict[str, ws.CacheEntry] = {}
    todo = _put_all(blobs, str(workspace), found.files, cache, made, fresh, started, tick)
    if todo:  # known from the cache, but their blobs are gone (collected): read them again
        _put_all(blobs, str(workspace), todo, {}, made, fresh, started, tick)
    tick(len(found.files), len(found.files))
    ws.save_cache(workspace, blobs.root.parent, fresh)
    return made


def _put_all(blobs: BlobStore, root: str, files: list[ws.Found], cache: dict[str, Any],
             made: Snapshot, fresh: dict[str, ws.CacheEntry], started: int,
             tick: Callable[[int, int], object]) -> list[ws.Found]:
    """Put ``files`` not known from ``cache`` into ``blobs`` in one batch, adding every one to
    ``made``; the known ones whose blobs are gone, still to be read."""
    known: list[tuple[ws.Found, str]] = []
    folders = ws.Folders(root)
    with blobs.batch() as batch, closing(folders):
        for at, item in enumerate(files):
            if not at % TICK_EVERY:
                tick(at, len(files))
            digest = None if item.is_link else ws.cached_digest(cache, item)
            if digest is not None:
                known.append((item, digest))
                continue
            got = _put(batch, folders, item, made.skipped)
            if got is not None:
                made.read += 1
                _add(made, fresh, item.path, got[0], got[1], started)
    present = _present(blobs, {digest for _, digest in known})  # (after the batch: see doc)
    manifest, racy = made.manifest, started - ws.RACY_NS
    for item, digest in known:  # (``_add`` inlined: 10,000 files, 25 ms less)
        if digest in present:
            info = item.info
            manifest[item.path] = FileEntry(digest, info.st_size, info.st_mode & 0o7777)
            if info.st_mtime_ns < racy:
                fresh[item.path] = (info.st_size, info.st_mtime_ns, info.st_ino, digest)
    return [item for item, digest in known if digest not in present]


def _add(made: Snapshot, fresh: dict[str, ws.CacheEntry], path: str, digest: str,
         info: os.stat_result, started: int) -> None:
    made.manifest[path] = _entry(digest, info)
    if not stat.S_ISLNK(info.st_mode) and (kept := ws.cache_entry(info, digest, started)):
        fresh[path] = kept


def _entry(digest: str, info: os.stat_result) -> FileEntry:
    mode = LINK_MODE if stat.S_ISLNK(info.st_mode) else stat.S_IMODE(info.st_mode)
    return FileEntry(digest, info.st_size, mode)


def _present(blobs: BlobStore, digests: set[str]) -> set[str]:
    """Those of ``digests`` the blob store holds. Each one older than ``TOUCH_AGE_S`` is
    touched (its mtime renewed), so a garbage collection keeps it while the manifest that
    names it is written (see the module docstring)."""
    server = getattr(blobs, "server", None)
    if server is not None:  # a runyard server's blobs: asked for in one request
        return digests - set(server.missing(sorted(digests))) if digests else set()
    held, root, old = set(), str(blobs.root), time.time() - TOUCH_AGE_S
    for digest in digests:
        path = f"{root}/{digest[:2]}/{digest[2:]}"  # (BlobStore.path's Path: 20 us each)
        try:
            if os.stat(path).st_mtime < old:
                os.utime(path)
            held.add(digest)
        except FileNotFoundError:
            continue
        except OSError:  # another user's blob (a shared store): it is there
            held.add(digest)
    return held


def _put(batch: BlobBatch, folders: ws.Folders, item: ws.Found, skipped: list[str]
         ) -> tuple[str, os.stat_result] | None:
    """Put ``item`` into ``batch``: its digest and its ``stat`` as read (None: skipped)."""
    folder, _, name = item.path.rpartition("/")
    try:
        where = folders.fd(folder)
    except OSError as exc:
        skipped.append(f"{item.path!r}: its folder cannot be reached ({exc.strerror})")
        return None
    if item.is_link:
        try:
            target = os.fsencode(os.readlink(name, dir_fd=where))
        except OSError as exc:
            skipped.append(f"{item.path!r}: cannot read the link ({exc.strerror})")
            return None
        ref = batch.put_stream(io.BytesIO(target))
        return ref.digest, _with_size(item.info, len(target))
    for _ in range(RETRIES):
        try:
            got = _put_once(batch, name, where)
        except FileNotFoundError:
            skipped.append(f"{item.path!r}: removed while the version was made")
            return None
        except OSError as exc:  # (ELOOP: it became a link since the scan)
            skipped.append(f"{item.path!r}: cannot read it ({exc.strerror})")
            return None
        if got is not None:
            return got
    raise ValidationError(f"file {item.path!r} kept changing while it was read; stop what "
                          "writes it and create the version again")


def _put_once(batch: BlobBatch, name: str, folder: int) -> tuple[str, os.stat_result] | None:
    """One read of the file ``name`` in the open ``folder``; None if it changed meanwhile."""
    fd = os.open(name, _OPEN, dir_fd=folder)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(0, "it is no longer a regular file")
        with open(fd, "rb", buffering=0, closefd=False) as stream:
            ref = batch.put_stream(stream)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) \
            or ref.size != after.st_size:
        return None
    return ref.digest, after


def _with_size(info: os.stat_result, size: int) -> os.stat_result:
    fields = list(info)
    fields[stat.ST_SIZE] = size
    return os.stat_result(fields)
