"""Making many blob writes durable at once, without one disk flush per file.

A blob is durable once its bytes and the folder entry naming it are on the disk. Doing that
with an ``fsync`` of every file and of every fan-out folder costs two device flushes per blob:
200 blobs of 100 KB went at 68-95 MB/s. A batch is made durable instead with one ``syncfs``
of the file system holding the store for the data, and, after the links, one more for the
folder entries: the syncing of those 200 blobs fell from ~60-150 ms to ~15-20 ms (mostly the
disk writing the 20 MB), and ``save_file`` rose to ~240-360 MB/s on this (busy, 2-core)
machine; fsyncing each file and folder from 16 threads took ~31 ms and ~32 ms of CPU,
against ~19 ms and ~5 ms. But ``syncfs`` also writes out whatever else waits to be written on
that file system (other programs' too, bounded by the kernel's dirty-page limits), so a small
batch (fewer than ``SYNCFS_FROM`` files), or a system without ``syncfs``, fsyncs each file and
folder on its own instead. (Starting each file's writeback as it was written, with
``sync_file_range``, cost ~100 us of CPU per file here and saved nothing at the sync.)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from runyard.blobs.tempfiles import Temp, sync_temp
from runyard.fsio import fsync_dir

SYNCFS_FROM = 16  # files (or folders) from which one syncfs beats an fsync of each
EARLY_BYTES = 4 << 20  # bytes put since the last early sync (``EarlySync``) worth another


@cache
def _libc() -> Any:
    """The C library, for ``syncfs`` (``None`` outside Linux)."""
    if not hasattr(os, "O_DIRECTORY") or os.uname().sysname != "Linux":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def syncfs(folder: Path) -> bool:
    """Flush everything written to the file system holding ``folder``, waiting until it is on
    the disk; ``False`` where there is no ``syncfs`` (nothing was done)."""
    libc = _libc()
    if libc is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            import ctypes

            code = ctypes.get_errno()
            raise OSError(code, f"syncfs: {os.strerror(code)}")
    finally:
        os.close(fd)
    return True


def sync_files(root: Path, temps: list[Temp]) -> None:
    """Make the content of every temporary file in ``temps`` (all under ``root``) durable."""
    if len(temps) >= SYNCFS_FROM and syncfs(root):
        return
    for temp in temps:
        sync_temp(temp)


def sync_folders(root: Path, folders: Iterable[str], linked: Iterable[int] = ()) -> None:
    """Make the entries of every folder in ``folders`` (all under ``root``) durable, and the
    link counts of the unnamed files open at ``linked`` that were given those names (a
    folder's fsync need not write the inode its new entry names, on ext4 without a journal)."""
    folders = list(folders)
    if len(folders) >= SYNCFS_FROM and syncfs(root):
        return
    for folder in folders:
        fsync_dir(Path(folder))
    for fd in linked:
        os.fsync(fd)


class EarlySync:
    """A ``syncfs`` of a batch's file system started on a thread of its own once
    ``EARLY_BYTES`` were put since the last, so the disk writes them while the batch copies the
    next files, and the commit's own sync waits only for the tail. One at a time; the commit
    still syncs everything itself, so an early sync that fails or lags costs nothing but the
    disk's time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._waiting = 0  # bytes put since the last early sync began
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()  # (puts may come from several threads)

    def wrote(self, size: int, files: int) -> None:
        """``size`` more bytes were put, ``files`` wait in all: start a sync if enough wait
        (and enough files that the commit will sync the file system too) and none runs."""
        self._waiting += size
        if self._waiting < EARLY_BYTES or files < SYNCFS_FROM or _libc() is None:
            return
        with self._starting:
            if self.running():
                return
            self._waiting = 0
            self._thread = threading.Thread(target=self._sync, name="runyard-blob-sync",
                                            daemon=True)
            self._thread.start()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _sync(self) -> None:
        with contextlib.suppress(OSError):  # (the commit's own sync reports what fails)
            syncfs(self.root)

    def wait(self) -> None:
        """Wait for the early sync in progress, if any (so no thread outlives a commit)."""
        thread = self._thread
        if thread is not None:
            thread.join()
        self._waiting = 0
