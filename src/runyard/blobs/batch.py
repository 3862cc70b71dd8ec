"""A batch of blob puts made durable together (``BlobStore.batch``).

Each put copies its content into a temporary file in the store's root while hashing it (one
read of the source) and starts the file's writeback; nothing is fsynced yet. ``commit`` then
makes every waiting file durable in one go (``runyard.blobs.syncing``), hard-links each into
place under its digest, and makes those folder entries durable too. So a blob appears under
its digest name only once its bytes are on the disk: a crash at any point leaves whole blobs
or none, plus temporary files that ``BlobStore.remove_stale_temp`` clears. A blob put in a
batch can be read only after ``commit`` returns; a writer that records where a blob is (a
catalog entry) commits first, so no record names a blob that is not durable.

Once ``PRESYNC_BYTES`` wait in ``SYNCFS_FROM`` files or more, a put starts a ``syncfs`` on a
thread of its own: the disk writes those bytes while the next files are copied, and the
commit's own sync only waits for the rest (200 x 100 KB: the sync at ``commit`` went from
~15-25 to ~5-10 ms here). It only starts writing early what the commit syncs anyway; the
commit does not rely on it.

Puts may come from several threads while one other thread commits.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from runyard.blobs.digests import BlobRef
from runyard.blobs.syncing import SYNCFS_FROM, sync_files, sync_folders, syncfs
from runyard.errors import StoreError

if TYPE_CHECKING:
    from runyard.blobs.local import BlobStore

PRESYNC_BYTES = 4 << 20  # bytes put since the last early sync that start another


class BlobBatch:
    """Puts into ``blobs`` waiting for one ``commit`` (a context manager: committed when its
    block ends without an error, discarded otherwise; a failed commit raises ``StoreError``)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._waiting: deque[tuple[Path, BlobRef]] = deque()
        self._held: set[str] = set()
        self._unsynced = 0  # bytes put since the last early sync started
        self._presync: threading.Thread | None = None

    def __contains__(self, digest: object) -> bool:
        """Whether a put of this batch holds ``digest``, not committed yet."""
        return digest in self._held

    def __len__(self) -> int:
        return len(self._waiting)

    def put_file(self, path: Path | str) -> BlobRef:
        """Copy the file at ``path`` into the batch, hashing it on the way."""
        return self._add(*self.blobs.write_file(path))

    def put_stream(self, stream: IO[bytes], *, expect: str | None = None) -> BlobRef:
        """Copy everything ``stream`` yields into the batch; with ``expect``, the content
        must hash to that digest (else ``IntegrityError`` and nothing is kept)."""
        return self._add(*self.blobs.write_stream(stream, expect=expect))

    def _add(self, temp: Path, ref: BlobRef) -> BlobRef:
        self._held.add(ref.digest)
        self._waiting.append((temp, ref))
        self._unsynced += ref.size
        if self._unsynced >= PRESYNC_BYTES and len(self._waiting) >= SYNCFS_FROM:
            self._start_presync()
        return ref

    def _start_presync(self) -> None:
        """Start writing the waiting files out (one early ``syncfs``, on its own thread)."""
        running = self._presync
        if running is not None and running.is_alive():
            return
        self._unsynced = 0
        self._presync = threading.Thread(target=_presync, args=(self.blobs.root,),
                                         name="runyard-blob-presync", daemon=True)
        self._presync.start()

    def _join_presync(self) -> None:
        running, self._presync = self._presync, None
        if running is not None:
            running.join()

    def commit(self) -> dict[str, str]:
        """Make every blob put so far durable and place it under its digest. Returns the
        blobs that could not be placed (digest → why); empty when all were."""
        taken = _take_all(self._waiting)
        if not taken:
            return {}
        self._join_presync()  # (its sync and the commit's would only take turns)
        try:
            failed = self._place(taken)
        finally:
            for temp, ref in taken:
                _unlink(temp)
                self._held.discard(ref.digest)
        return failed

    def _place(self, taken: list[tuple[Path, BlobRef]]) -> dict[str, str]:
        root = self.blobs.root
        try:
            sync_files(root, [temp for temp, _ in taken])
        except OSError as exc:
            return {ref.digest: f"cannot sync it: {exc}" for _, ref in taken}
        failed: dict[str, str] = {}
        folders: set[str] = set()
        for temp, ref in taken:
            try:
                if (folder := self.blobs.place(temp, ref)) is not None:
                    folders.add(folder)
            except OSError as exc:
                failed[ref.digest] = f"cannot place it: {exc}"
        try:
            sync_folders(root, sorted(folders))
        except OSError as exc:
            return {ref.digest: f"cannot sync its folder: {exc}" for _, ref in taken}
        return failed

    def discard(self) -> None:
        """Forget every put not committed yet, removing its temporary file."""
        for temp, ref in _take_all(self._waiting):
            _unlink(temp)
            self._held.discard(ref.digest)

    def __enter__(self) -> BlobBatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if error is not None:
            self.discard()
            return
        failed = self.commit()
        if failed:
            digest, why = next(iter(failed.items()))
            raise StoreError(f"blob {digest} under {self.blobs.root}: {why} "
                             f"({len(failed)} blob(s) not stored); check the disk and put again")


def _presync(root: Path) -> None:
    """An early ``syncfs`` of the store's file system; a failure is the commit's to find."""
    with contextlib.suppress(OSError):
        syncfs(root)


def _unlink(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)


def _take_all(waiting: deque[tuple[Path, BlobRef]]) -> list[tuple[Path, BlobRef]]:
    """Pop what ``waiting`` holds now (appends by other threads meanwhile stay for later)."""
    return [waiting.popleft() for _ in range(len(waiting))]
