"""Bringing another store's blob into a batch by a hard link instead of a copy (``store copy``).

A blob file is immutable and read-only, so a store on the same file system can share its
inode: the batch gets a temporary link to the source blob in place of a temporary copy, and
``BlobBatch.commit`` syncs and places it like any other (the data is already on the disk, so
the sync has only folder entries to write). The content is still checked against its digest,
hashed from the page cache through the descriptor whose inode was linked, so a corrupt source
blob is refused, not spread. ``store copy`` in ``bench_artifacts.py`` (issue 16), quiet
minutes: 200 x 100 KB from 198-298 MB/s to 344-396 (medians; the temporary file's create and
write and the data's flush were half the time), 2 x 256 MB from 663 to ~1,375 MB/s.

Only a read-only regular file owned by this user, on the destination's file system, is
linked; anything else (another user's store, where ``fs.protected_hardlinks`` refuses the link
anyway, a writable file, another file system) returns ``None`` and is copied as before.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import IO

from runyard.blobs.digests import BlobRef, algorithm, check_digest, corrupt, digest_of, hasher
from runyard.blobs.tempfiles import TEMP_PREFIX

CHUNK = 1 << 20  # bytes hashed at a time
_WRITABLE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_REFUSED = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.EOPNOTSUPP,
            errno.ENOSYS, errno.EROFS}


def link_blob(root: str, stream: IO[bytes], expect: str) -> tuple[str, BlobRef] | None:
    """A temporary link in ``root`` to the blob file open as ``stream``, its content checked
    to hash to ``expect`` (else ``IntegrityError`` and no link is left); ``None`` where the
    file cannot be linked (copy it instead)."""
    expect = check_digest(expect)
    source = _source(root, stream)
    if source is None:
        return None
    fd, info = source
    temp = _link_temp(root, stream.name, info)
    if temp is None:
        return None
    try:
        digest, size = _hash(fd, algorithm(expect))
        if digest != expect:
            raise corrupt(expect, digest)
        os.utime(temp)  # a fresh mtime, as a copy would have: see ``layout.touch``
    except BaseException:
        os.unlink(temp)
        raise
    return temp, BlobRef(digest, size)


def _source(root: str, stream: IO[bytes]) -> tuple[int, os.stat_result] | None:
    """The descriptor and status of ``stream``'s file where it may be linked into ``root``."""
    if not isinstance(getattr(stream, "name", None), str):
        return None
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
        here = _device(root)
    except (AttributeError, OSError, ValueError):
        return None
    linkable = (stat.S_ISREG(info.st_mode) and not info.st_mode & _WRITABLE
                and info.st_uid == os.geteuid() and info.st_dev == here)
    return (fd, info) if linkable else None


def _device(root: str) -> int:
    """The device of ``root``, created on demand (as a batch's first temporary file does)."""
    try:
        return os.stat(root).st_dev
    except FileNotFoundError:
        os.makedirs(root, exist_ok=True)
        return os.stat(root).st_dev


def _link_temp(root: str, path: str, info: os.stat_result) -> str | None:
    """A new temporary name in ``root`` for the file at ``path``, if it is still the inode
    ``info`` describes (the one whose descriptor is hashed); ``None`` where linking fails."""
    for _ in range(100):
        temp = f"{root}/{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            os.link(path, temp, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in _REFUSED or isinstance(exc, FileNotFoundError):
                return None
            raise
        linked = os.lstat(temp)
        if (linked.st_ino, linked.st_dev) == (info.st_ino, info.st_dev):
            return temp
        os.unlink(temp)  # replaced since it was opened: copy what was opened instead
        return None
    return None


def _hash(fd: int, name: str) -> tuple[str, int]:
    """The digest (by the hash ``name``) and size of the whole file open at ``fd``."""
    sha = hasher(name)
    buf = bytearray(min(CHUNK, os.fstat(fd).st_size + 1))
    view = memoryview(buf)
    size = 0
    while n := os.preadv(fd, [buf], size):
        sha.update(view[:n])
        size += n
    return digest_of(sha, name), size
