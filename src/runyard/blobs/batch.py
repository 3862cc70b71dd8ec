"""A batch of blob puts made durable together (``BlobStore.batch``).

Each put copies its content into a temporary file in the store's root while hashing it (one
read of the source) and starts the file's writeback; nothing is fsynced yet. ``commit`` then
makes every waiting file durable in one go (``runyard.blobs.syncing``), hard-links each into
place under its digest, and makes those folder entries durable too. So a blob appears under
its digest name only once its bytes are on the disk: a crash at any point leaves whole blobs
or none, plus temporary files that ``BlobStore.remove_stale_temp`` clears. A blob put in a
batch can be read only after ``commit`` returns; a writer that records where a blob is (a
catalog entry) commits first, so no record names a blob that is not durable. (``put_blob``,
for another store's blob, makes the temporary file a hard link to it where it may:
``runyard.blobs.linking``.)

A regular file's copy goes into an unnamed temporary file where the file system has them
(``runyard.blobs.tempfiles``: nothing is left behind by a crash), a bounded number at once.
Once a batch holds enough files for its commit to sync the whole file system, an early
``syncfs`` runs on a thread of its own every 4 MB (``syncing.EarlySync``), so the disk writes
while later files are copied and the commit waits only for the tail. ``save_file`` of 200 x
100 KB to a durable ``close()``, in one process, a folder where no inode was freed lately:
``close()`` from ~22 to ~9.5 ms, the copying loop from ~30 to ~33 ms, ~385 -> ~470 MB/s;
in ``bench_artifacts.py``'s fresh processes, medians of 12-15 interleaved: 360-377 -> 386-442
MB/s, where unnamed files alone gave 360-389 and early syncs alone 393 (issue 16).

Puts may come from several threads while one other thread commits.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from runyard.blobs.digests import BlobRef
from runyard.blobs.linking import link_blob
from runyard.blobs.syncing import EarlySync, sync_files, sync_folders
from runyard.blobs.tempfiles import Temp, drop_temp
from runyard.errors import StoreError

if TYPE_CHECKING:
    from runyard.blobs.local import BlobStore


class BlobBatch:
    """Puts into ``blobs`` waiting for one ``commit`` (a context manager: committed when its
    block ends without an error, discarded otherwise; a failed commit raises ``StoreError``)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._waiting: deque[tuple[Temp, BlobRef]] = deque()
        self._held: set[str] = set()
        self._early = EarlySync(blobs.root)

    def __contains__(self, digest: object) -> bool:
        """Whether a put of this batch holds ``digest``, not committed yet."""
        return digest in self._held

    def __len__(self) -> int:
        return len(self._waiting)

    def put_file(self, path: Path | str) -> BlobRef:
        """Copy the file at ``path`` into the batch, hashing it on the way."""
        return self._add(*self.blobs.write_file(path, unnamed=True))

    def put_stream(self, stream: IO[bytes], *, expect: str | None = None) -> BlobRef:
        """Copy everything ``stream`` yields into the batch; with ``expect``, the content
        must hash to that digest (else ``IntegrityError`` and nothing is kept)."""
        return self._add(*self.blobs.write_stream(stream, expect=expect))

    def put_blob(self, stream: IO[bytes], *, expect: str) -> BlobRef:
        """``put_stream`` for another store's blob file open as ``stream``: hard-linked where
        it may be (``runyard.blobs.linking``), else copied; checked against ``expect``."""
        linked = link_blob(str(self.blobs.root), stream, expect)
        if linked is None:
            return self.put_stream(stream, expect=expect)
        return self._add(*linked)

    def _add(self, temp: Temp, ref: BlobRef) -> BlobRef:
        self._held.add(ref.digest)
        self._waiting.append((temp, ref))
        self._early.wrote(ref.size, len(self._waiting))
        return ref

    def commit(self) -> dict[str, str]:
        """Make every blob put so far durable and place it under its digest. Returns the
        blobs that could not be placed (digest → why); empty when all were."""
        taken = _take_all(self._waiting)
        if not taken:
            return {}
        try:
            failed = self._place(taken)
        finally:
            self._drop(taken)
        return failed

    def _place(self, taken: list[tuple[Temp, BlobRef]]) -> dict[str, str]:
        root = self.blobs.root
        try:
            sync_files(root, [temp for temp, _ in taken])
        except OSError as exc:
            return {ref.digest: f"cannot sync it: {exc}" for _, ref in taken}
        finally:
            self._early.wait()
        failed: dict[str, str] = {}
        folders: set[str] = set()
        linked: list[int] = []  # unnamed files given a name (their link count changed)
        for temp, ref in taken:
            try:
                if (folder := self.blobs.place(temp, ref)) is not None:
                    folders.add(folder)
                    if isinstance(temp, int):
                        linked.append(temp)
            except OSError as exc:
                failed[ref.digest] = f"cannot place it: {exc}"
        try:
            sync_folders(root, sorted(folders), linked)
        except OSError as exc:
            return {ref.digest: f"cannot sync its folder: {exc}" for _, ref in taken}
        return failed

    def discard(self) -> None:
        """Forget every put not committed yet, removing its temporary file."""
        self._drop(_take_all(self._waiting))
        self._early.wait()

    def _drop(self, taken: list[tuple[Temp, BlobRef]]) -> None:
        for temp, ref in taken:
            drop_temp(temp)
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


def _take_all(waiting: deque[tuple[Temp, BlobRef]]) -> list[tuple[Temp, BlobRef]]:
    """Pop what ``waiting`` holds now (appends by other threads meanwhile stay for later)."""
    return [waiting.popleft() for _ in range(len(waiting))]
