"""Reading and checking a local blob store's blobs: the half of ``BlobStore`` that never
writes under the store's root (``copy_to`` writes outside it)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from runyard.blobs.copying import copy_stream
from runyard.blobs.digests import (
    B3_PREFIX,
    BLAKE3,
    BlobRef,
    HashingReader,
    algorithm,
    check_digest,
    corrupt,
    digest_of,
    hasher,
)
from runyard.blobs.layout import digests_under
from runyard.blobs.tempfiles import make_temp
from runyard.errors import BlobNotFound, StoreError
from runyard.fsio import fsync_dir

CHUNK = 1 << 20  # bytes read at a time
FETCHED_MODE = 0o644


class BlobReading:
    """What reads blobs under ``root``: ``path`` says where each lives (``BlobStore``)."""

    root: Path

    def path(self, digest: str) -> Path:
        raise NotImplementedError

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def __iter__(self) -> Iterator[str]:
        return self.digests()

    def digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order (SHA-256 ones first); temporary files are
        skipped."""
        yield from digests_under(self.root, "")
        yield from digests_under(self.root / BLAKE3, B3_PREFIX)

    def open(self, digest: str, *, verify: bool = False) -> BinaryIO:
        """A binary file to read the blob. With ``verify``, reading to the end checks the
        hash and raises ``IntegrityError`` if the content does not match."""
        digest = check_digest(digest)
        try:
            handle = open(self.path(digest), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        if not verify:
            return handle
        return io.BufferedReader(HashingReader(handle, digest), CHUNK)

    def holds(self, digest: str, data: bytes | bytearray) -> bool:
        """Whether the stored blob ``digest`` has exactly the bytes ``data`` (compared byte
        by byte in place, many times faster than hashing them; False if it is missing)."""
        import mmap

        try:
            with open(self.path(digest), "rb", buffering=0) as handle:
                if os.fstat(handle.fileno()).st_size != len(data):
                    return False
                if not data:
                    return True
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    if isinstance(data, bytearray):
                        return data == mapped  # type: ignore[comparison-overlap]
                    return mapped[:] == data  # bytes compare only with bytes: a copy
        except (OSError, ValueError):
            return False

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as handle:
            return handle.read()

    def copy_to(self, digest: str, dest: Path | str) -> Path:
        """Write the blob to ``dest`` atomically (temp file beside it, fsync, replace),
        checking its hash on the way; parent folders are created. Returns ``dest``."""
        digest, target = check_digest(digest), Path(dest)
        with self.open(digest) as source:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, temp = make_temp(target.parent)
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc}") from exc
            try:
                _copy_checked(source, fd, digest)
                os.chmod(temp, FETCHED_MODE)
                os.replace(temp, target)
                fsync_dir(target.parent)
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc}") from exc
            finally:
                temp.unlink(missing_ok=True)
        return target

    # -- checking ---------------------------------------------------------------------------
    def hash_of(self, digest: str) -> str:
        """The digest of the blob's content as it is on disk now, with the hash that
        ``digest`` names."""
        name = algorithm(check_digest(digest))
        sha = hasher(name)
        with self.open(digest) as handle:
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
        return digest_of(sha, name)

    def verify(self, digest: str) -> bool:
        """Re-hash the blob: ``True`` if its content matches its digest. ``BlobNotFound``
        if it is missing."""
        return self.hash_of(digest) == check_digest(digest)

    def check(self, digest: str) -> BlobRef:
        """Like ``verify`` but raises ``IntegrityError`` on a mismatch."""
        actual = self.hash_of(digest)
        if actual != check_digest(digest):
            raise corrupt(digest, actual)
        return BlobRef(actual, self.size(digest))

    def verify_all(self) -> list[str]:
        """Re-hash every blob; the digests of the corrupt ones, sorted (empty if all good)."""
        return [d for d in self.digests() if not self.verify(d)]


def _copy_checked(source: IO[bytes], fd: int, digest: str) -> None:
    """Copy ``source`` into the open file ``fd`` (synced, closed), checking it hashes to
    ``digest``."""
    ref = copy_stream(fd, source, algorithm(digest))
    if ref.digest != digest:
        raise corrupt(digest, ref.digest)
