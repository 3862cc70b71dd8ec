"""The temporary files a blob is written into before it is placed under its digest.

A named one (``.tmp-<16 hex digits>`` in the store's root) is what a killed writer may leave
behind (``BlobStore.remove_stale_temp`` clears it). Where the file system has them (Linux:
ext4, xfs, btrfs, tmpfs), a batch writes a regular file's copy into an *unnamed* one instead
(``O_TMPFILE``): a file with no name at all until the commit links it under its digest
(``link_unnamed``), so a crash leaves nothing behind, and a put neither adds nor removes a
name in the root folder (figures: ``batch``'s docstring). It is linked by its descriptor
(``/proc/self/fd/N``), so the batch holds the descriptor until its commit: at most
``most_held()`` in the process at once (puts beyond take named files), and only where a first
try in that root worked (``_links``), so a file system or a sandbox without them (no
``O_TMPFILE``, no ``/proc``) keeps named ones. (On a file system without a journal, an
unnamed file that a crash cut off keeps its space until the next ``fsck``, as any deleted
file still open at a crash does; with a journal, mounting frees it.)

A temporary file is either kind: a ``str`` path (named) or an ``int`` descriptor (unnamed).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import threading
from pathlib import Path

TEMP_PREFIX = ".tmp-"
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS}
_works: dict[str, bool] = {}  # root -> whether unnamed temporary files can be linked there
_held = [0]  # unnamed temporary files open in this process now
_lock = threading.Lock()

Temp = str | int  # a named temporary file's path, or an unnamed one's open descriptor


def make_temp(folder: Path, mode: int = 0o600) -> tuple[int, Path]:
    """A new temporary file in ``folder``, open to write and read (the ``tempfile`` module would
    cost an import of ``random`` and ``shutil`` at every start, for this one call)."""
    fd, path = new_named(str(folder), mode)
    return fd, Path(path)


def new_named(folder: str, mode: int) -> tuple[int, str]:
    """A new named temporary file in ``folder`` (open to write and read) and its path."""
    for _ in range(100):
        path = f"{folder}/{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


@functools.cache
def most_held() -> int:
    """How many unnamed temporary files this process holds open at most (all batches
    together): a quarter of its descriptors, at most 1,024; puts beyond that take named ones."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1024 if soft == resource.RLIM_INFINITY else max(0, min(1024, soft // 4))


def new_unnamed(root: str, mode: int) -> int | None:
    """A new unnamed temporary file in ``root`` (open to write and read; ``drop_temp`` it),
    or ``None`` where they cannot be used there or enough are open (make a named one)."""
    if not _O_TMPFILE or not _works.get(root, True) or not _take():
        return None
    try:
        if root not in _works:
            _works[root] = _links(root, mode)
        if _works[root]:
            return os.open(root, os.O_RDWR | _O_TMPFILE, mode)
    except OSError as exc:  # (ENOENT: the caller makes the root; EMFILE: named ones fail too)
        if exc.errno in _UNSUPPORTED:
            _works[root] = False
    _give_back()
    return None


def _take() -> bool:
    with _lock:
        if _held[0] >= most_held():
            return False
        _held[0] += 1
        return True


def _give_back() -> None:
    with _lock:
        _held[0] -= 1


def _links(root: str, mode: int) -> bool:
    """Whether an unnamed file in ``root`` can be given a name (tried once, on a file of its
    own: one that was linked and unlinked again can never be linked anew)."""
    probe = f"{root}/{TEMP_PREFIX}probe-{os.urandom(8).hex()}"
    fd = os.open(root, os.O_RDWR | _O_TMPFILE, mode)
    try:
        link_unnamed(fd, probe)
    except OSError:
        return False
    finally:
        os.close(fd)
    _unlink(probe)
    return True


def link_unnamed(fd: int, target: str) -> None:
    """Give the unnamed file open at ``fd`` the name ``target`` (``FileExistsError`` if taken).

    ``linkat(2)`` of ``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``, as ``open(2)`` documents
    for ``O_TMPFILE``; ``os.link`` calls ``linkat`` only when given a folder descriptor, so it
    is given ``fd`` itself, which an absolute source path makes the kernel ignore."""
    os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=fd, follow_symlinks=True)


def sync_temp(temp: Temp) -> None:
    """Make a temporary file's content durable (fsync)."""
    fd = temp if isinstance(temp, int) else os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        if isinstance(temp, str):
            os.close(fd)


def drop_temp(temp: Temp) -> None:
    """Be done with a temporary file: remove a named one, close an unnamed one (which frees it,
    unless it was linked into place)."""
    if isinstance(temp, int):
        os.close(temp)
        _give_back()
    else:
        _unlink(temp)


def name_temp(temp: Temp, root: str) -> str:
    """A path naming the temporary file: a named one's own, an unnamed one linked to a new
    named temporary path in ``root`` (which the caller then renames or removes)."""
    if isinstance(temp, str):
        return temp
    for _ in range(100):
        path = f"{root}/{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            link_unnamed(temp, path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {root}")


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
