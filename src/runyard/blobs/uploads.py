"""Blobs that arrive in pieces pushed by a writer (a server's request body), checked against
their digest before they are kept, and resumable.

``Incoming`` takes one whole upload: each ``write`` goes to a new temporary file of the store
while it is hashed; ``finish`` keeps the file under its digest only if the hash matches (else
``IntegrityError`` and the file is removed), made read-only, synced and linked into place
(``BlobStore.place``) like any put.

``Resumed`` takes one piece of a resumable upload (``Content-Range``): it is appended to the
upload's partial file, ``<root>/.tmp-upload-<digest>``, a name made from the checked digest
alone (nothing else a client sends reaches a path), among the store's temporary files
(``BlobStore.remove_stale_temp`` clears one left untouched for long). The writer holds an
exclusive ``flock`` on the partial file from start to end, so a second uploader of the same
digest (another request, another server process) is refused instead of interleaving its bytes
with the first's; the lock is taken on the file the name still names (a writer that finished
removes the name, and a latecomer must not append to the removed file). Every piece is synced
before its answer, so the ``received`` count a client resumes from is on the disk. When the
last byte is in, the whole file is hashed and kept or removed as above.

Writes block (disk I/O, hashing): an event loop calls them in worker threads, one at a time.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from runyard.blobs.digests import BlobRef, algorithm, check_digest, digest_of, hasher
from runyard.blobs.layout import touch
from runyard.blobs.local import BLOB_MODE, CHUNK, BlobStore
from runyard.blobs.tempfiles import TEMP_PREFIX, make_temp
from runyard.errors import ConflictError, IntegrityError, StoreError, ValidationError
from runyard.fsio import fsync_dir

UPLOAD_PREFIX = TEMP_PREFIX + "upload-"
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class UploadConflict(ConflictError):
    """A piece that does not continue the upload (or another writer holds it); ``received``
    is where the upload stands."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


@dataclass(frozen=True)
class Piece:
    """Bytes ``start``..``end`` (inclusive) of a blob of ``total`` bytes (``None``: not known
    yet), as ``Content-Range: bytes start-end/total`` says."""

    start: int
    end: int
    total: int | None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def partial_path(blobs: BlobStore, digest: str) -> Path:
    """Where the partial upload of ``digest`` is kept (named by the checked digest only)."""
    return blobs.root / (UPLOAD_PREFIX + check_digest(digest).replace(":", "-"))


SETTLE_S = 5.0  # how long ``received`` waits for a writer still busy with its piece


def received(blobs: BlobStore, digest: str, settle: float = SETTLE_S) -> int:
    """How many bytes of ``digest`` an upload has kept so far (0 if none).

    A client asks this right after its connection broke, while the server may still be
    writing what had reached it: the answer waits (up to ``settle`` seconds) for the writer's
    lock, so it counts every byte that writer keeps, and the client does not resend them."""
    try:
        fd = os.open(partial_path(blobs, digest),
                     os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | os.O_NONBLOCK)
    except OSError:  # none, or not a file of ours (a link)
        return 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        deadline = time.monotonic() + settle
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # a writer holds it: its piece is still coming in
                if time.monotonic() >= deadline:
                    break  # (a live second uploader: where it stands now)
                time.sleep(0.02)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def mismatch(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(f"the uploaded content hashes to {actual}, not {digest}; nothing "
                          "was kept: upload the right content again")


class Incoming:
    """One whole upload of the blob ``digest`` (see the module docstring)."""

    def __init__(self, blobs: BlobStore, digest: str) -> None:
        self.blobs, self.digest = blobs, check_digest(digest)
        self._sha = hasher(algorithm(self.digest))
        self.size = 0
        try:
            blobs.root.mkdir(parents=True, exist_ok=True)
            self._fd, self._temp = make_temp(blobs.root)
        except OSError as exc:
            raise _write_error(blobs, exc) from exc

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        try:
            _write_at(self._fd, memoryview(data), self.size)
        except OSError as exc:
            raise _write_error(self.blobs, exc) from exc
        self.size += len(data)

    def finish(self) -> BlobRef:
        """Keep the blob if it hashed to its digest (``IntegrityError`` otherwise)."""
        try:
            actual = digest_of(self._sha, algorithm(self.digest))
            if actual != self.digest:
                raise mismatch(self.digest, actual)
            return _place(self.blobs, self._fd, self._temp, BlobRef(actual, self.size))
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the upload (its temporary file is removed)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._temp.unlink(missing_ok=True)


class Resumed:
    """One piece of a resumable upload of ``digest``, its partial file held by this writer
    alone (``UploadConflict`` if the piece does not start where the upload stands, or another
    writer holds it). ``done``: the stored blob, when it is stored already (the piece is not
    needed). ``end()`` syncs what was written and returns the bytes held so far, or the blob
    once the last byte is in and it hashed right (``IntegrityError``: nothing kept)."""

    def __init__(self, blobs: BlobStore, digest: str, piece: Piece) -> None:
        self.blobs, self.digest, self.piece = blobs, check_digest(digest), piece
        self.done: BlobRef | None = None
        self._fd, self._path = _open_locked(blobs, self.digest)
        try:
            self.size = self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> int:
        if self.blobs.exists(self.digest):  # another upload finished it meanwhile
            self._path.unlink(missing_ok=True)
            touch(self.blobs.path(self.digest))  # (put again: see ``blobs.layout.touch``)
            self.done = BlobRef(self.digest, self.blobs.size(self.digest))
        size = os.fstat(self._fd).st_size
        if self.done is None and self.piece.start != size:
            if size == 0:
                self._path.unlink(missing_ok=True)  # (made by this open: no upload to keep)
            raise UploadConflict(f"this upload of {self.digest} holds {size} bytes; send the "
                                 f"piece that starts there, not at {self.piece.start}", size)
        return size

    def write(self, data: bytes) -> None:
        if self.done is not None:
            return
        if self.size + len(data) > self.piece.end + 1:
            raise ValidationError(f"the body holds more than the {self.piece.length} bytes "
                                  f"its Content-Range bytes {self.piece.start}-"
                                  f"{self.piece.end} says; the piece was not kept")
        try:
            _write_at(self._fd, memoryview(data), self.size)
        except OSError as exc:
            raise _write_error(self.blobs, exc) from exc
        self.size += len(data)

    def end(self) -> BlobRef | int:
        try:
            if self.done is not None:
                return self.done
            os.fsync(self._fd)
            total = self.piece.total
            if total is None or self.size < total:
                return self.size
            return self._finish()
        finally:
            self.close()

    def abandon(self, keep: bool) -> None:
        """Stop here: with ``keep`` the bytes written so far stay for a resume (the client
        went away), else the piece is cut off (it was refused)."""
        if self._fd >= 0 and self.done is None:
            if not keep and self.piece.start == 0:
                self._path.unlink(missing_ok=True)  # (nothing left to resume)
            elif not keep:
                os.ftruncate(self._fd, self.piece.start)
            os.fsync(self._fd)
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # (releases the lock)
            self._fd = -1

    def _finish(self) -> BlobRef:
        """Check the whole upload and place it under its digest; the partial name is
        removed either way."""
        try:
            ref = BlobRef(_hash_file(self._fd, algorithm(self.digest)), self.size)
            if ref.digest != self.digest:
                raise mismatch(self.digest, ref.digest)
            return _place(self.blobs, self._fd, self._path, ref)
        finally:
            self._path.unlink(missing_ok=True)


def _open_locked(blobs: BlobStore, digest: str) -> tuple[int, Path]:
    """The partial file of ``digest``, open and locked for this writer alone."""
    path = partial_path(blobs, digest)
    for _ in range(100):
        fd = _open(blobs, path)
        try:
            if not _lock(fd):
                raise UploadConflict(f"another upload of {digest} is in progress; retry later",
                                     os.fstat(fd).st_size)
            if _still_named(fd, path):
                return fd, path
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise StoreError(f"cannot hold the partial upload {path}; retry")


def _open(blobs: BlobStore, path: Path) -> int:
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o600)
        except FileNotFoundError:
            blobs.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, _OPEN_FLAGS, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; remove it") from None
        raise _write_error(blobs, exc) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path} is not a regular file; remove it")
    return fd


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file (a finished writer removes the name)."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def _place(blobs: BlobStore, fd: int, temp: Path, ref: BlobRef) -> BlobRef:
    """Make the checked file ``temp`` read-only and durable, and link it under its digest."""
    try:
        os.fchmod(fd, BLOB_MODE)
        os.fsync(fd)
        folder = blobs.place(temp, ref)
        if folder is not None:
            fsync_dir(Path(folder))
    except OSError as exc:
        raise _write_error(blobs, exc) from exc
    return ref


def _write_error(blobs: BlobStore, exc: OSError) -> StoreError:
    return StoreError(f"cannot write a blob under {blobs.root}: {exc}")


def _hash_file(fd: int, hash_name: str) -> str:
    sha = hasher(hash_name)
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        sha.update(chunk)
        offset += len(chunk)
    return digest_of(sha, hash_name)
