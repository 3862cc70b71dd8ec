"""Resumable uploads into a blob store: a blob sent in pieces, checked against its digest.

A piece of an upload (the server's ``PUT /blobs/{digest}`` with ``Content-Range``) is appended
to the upload's partial file, ``<root>/.tmp-upload-<digest>``: a name made from the checked
digest alone (nothing else a client sends reaches a path), among the store's temporary files
(``BlobStore.remove_stale_temp`` clears one left untouched for long). A writer holds an
exclusive ``flock`` on the partial file while it appends, so a second uploader of the same
digest (another request, another server process) is refused instead of interleaving its bytes
with the first's; the lock is taken on the file the name still names (a writer that finished
removes the name, and a latecomer must not append to the removed file). Every piece is synced
before its answer, so the ``received`` count a client resumes from is on the disk.

When the last byte is in, the whole file is hashed: if it matches, the file is made read-only,
synced and linked into place under its digest (``BlobStore.place``); if not, it is removed
and ``IntegrityError`` says so. Either way the partial file is gone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from runyard.blobs.digests import BlobRef, algorithm, check_digest, digest_of, hasher
from runyard.blobs.local import BLOB_MODE, CHUNK, TEMP_PREFIX, BlobStore
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


def received(blobs: BlobStore, digest: str) -> int:
    """How many bytes of ``digest`` an upload has kept so far (0 if none)."""
    try:
        info = os.lstat(partial_path(blobs, digest))
    except FileNotFoundError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def receive(blobs: BlobStore, digest: str, piece: Piece, stream: IO[bytes]) -> BlobRef | int:
    """Append ``piece`` (read from ``stream``) to the upload of ``digest``: the stored blob
    once the last byte is in and it hashed right, else the bytes received so far.

    ``UploadConflict`` if the piece does not start where the upload stands, or another writer
    is appending; ``ValidationError`` if ``stream`` holds more than the piece (the extra bytes
    are not kept); ``IntegrityError`` if the whole blob does not hash to ``digest`` (nothing
    kept). A stream that fails midway (the client went away) keeps the bytes read before."""
    digest = check_digest(digest)
    with _locked(blobs, digest) as (fd, path):
        if blobs.exists(digest):  # another upload finished it meanwhile
            path.unlink(missing_ok=True)
            return BlobRef(digest, blobs.size(digest))
        size = os.fstat(fd).st_size
        if piece.start != size:
            raise UploadConflict(f"this upload of {digest} holds {size} bytes; send the piece "
                                 f"that starts there, not at {piece.start}", size)
        try:
            size = _append(fd, size, piece, stream)
        finally:
            os.fsync(fd)
        if piece.total is None or size < piece.total:
            return size
        return _finish(blobs, fd, path, digest)


@contextlib.contextmanager
def _locked(blobs: BlobStore, digest: str) -> Iterator[tuple[int, Path]]:
    """The partial file of ``digest``, open and locked for this writer alone."""
    path = partial_path(blobs, digest)
    for _ in range(100):
        fd = _open(blobs, path)
        try:
            if not _lock(fd):
                raise UploadConflict(f"another upload of {digest} is in progress; retry later",
                                     os.fstat(fd).st_size)
            if _still_named(fd, path):
                yield fd, path
                return
        finally:
            os.close(fd)  # (releases the lock)
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
        raise StoreError(f"cannot open the partial upload {path}: {exc}") from exc
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


def _append(fd: int, size: int, piece: Piece, stream: IO[bytes]) -> int:
    """Copy ``stream`` to the end of the file (``size`` bytes now); the new size."""
    left = piece.length
    buf = bytearray(min(CHUNK, left + 1))
    view = memoryview(buf)
    while True:
        n = stream.readinto(view)  # type: ignore[attr-defined]
        if not n:
            return size
        if n > left:
            os.ftruncate(fd, size)
            raise ValidationError(f"the body holds more than the {piece.length} bytes its "
                                  f"Content-Range bytes {piece.start}-{piece.end} says")
        _write_at(fd, view[:n], size)
        size, left = size + n, left - n


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def _finish(blobs: BlobStore, fd: int, path: Path, digest: str) -> BlobRef:
    """Check the whole upload and place it under its digest; the partial name is removed."""
    try:
        ref = BlobRef(_hash_file(fd, algorithm(digest)), os.fstat(fd).st_size)
        if ref.digest != digest:
            raise IntegrityError(f"the uploaded content hashes to {ref.digest}, not {digest}; "
                                 "nothing was kept: upload the right content again")
        os.fchmod(fd, BLOB_MODE)
        os.fsync(fd)
        folder = blobs.place(path, ref)
        if folder is not None:
            fsync_dir(Path(folder))
        return ref
    except OSError as exc:
        raise StoreError(f"cannot store blob {digest} under {blobs.root}: {exc}") from exc
    finally:
        path.unlink(missing_ok=True)


def _hash_file(fd: int, hash_name: str) -> str:
    sha = hasher(hash_name)
    offset = 0
    while chunk := os.pread(fd, CHUNK, offset):
        sha.update(chunk)
        offset += len(chunk)
    return digest_of(sha, hash_name)
