"""A content-addressed blob store on the local file system.

Each blob is the file ``<root>/<first 2 hex digits>/<other 62 hex digits>`` named by the
SHA-256 of its content. Writers stream into a temporary file inside ``root`` while hashing,
fsync it, then move it into place; the move is a hard link where the file system has them, so a
blob that is already there is never replaced, and several processes may put the same content at
once. Blob files are made read-only: content-addressed data never changes in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from runyard.errors import (
    BlobNotFound,
    IntegrityError,
    NotFoundError,
    StoreError,
    ValidationError,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20  # bytes read and written at a time
TEMP_PREFIX = ".tmp-"
BLOB_MODE = 0o444
FETCHED_MODE = 0o644
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_FANOUT = re.compile(r"^[0-9a-f]{2}$")


@dataclass(frozen=True)
class BlobRef:
    """What a put returns: the content's SHA-256 (lowercase hex) and its size in bytes."""

    digest: str
    size: int


def check_digest(digest: str) -> str:
    """A SHA-256 hex digest in its canonical (lowercase) form, or ``ValidationError``."""
    if isinstance(digest, str) and _DIGEST.match(digest.lower()):
        return digest.lower()
    raise ValidationError(
        f"invalid blob digest {str(digest)[:80]!r}: a SHA-256 digest is 64 hex characters"
    )


def corrupt(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} is corrupt: its content hashes to {actual}; "
        "restore it from a copy of the store or put the original file again"
    )


class BlobStore:
    """Blobs under ``root`` (created on demand), addressed by the SHA-256 of their content."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    # -- addressing -------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        digest = check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def __contains__(self, digest: object) -> bool:
        """``digest in blobs``: False for anything that is not a stored digest."""
        return isinstance(digest, str) and bool(_DIGEST.match(digest.lower())) and self.exists(
            digest
        )

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def __iter__(self) -> Iterator[str]:
        return self.digests()

    def digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order; temporary files are skipped."""
        if not self.root.is_dir():
            return
        for fan in sorted(p for p in self.root.iterdir() if _FANOUT.match(p.name)):
            if not fan.is_dir():
                continue
            for entry in sorted(fan.iterdir()):
                digest = fan.name + entry.name
                if _DIGEST.match(digest) and entry.is_file():
                    yield digest

    def remove_stale_temp(self, older_than: float = 3600.0) -> int:
        """Delete temporary files left by writers that were killed, if untouched for
        ``older_than`` seconds (younger ones may belong to a put in progress). Returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff, removed = time.time() - older_than, 0
        for entry in self.root.glob(TEMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
        return removed

    # -- writing ----------------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> BlobRef:
        return self.put_stream(io.BytesIO(data))

    def put_file(self, path: Path | str) -> BlobRef:
        try:
            with open(path, "rb") as stream:
                return self.put_stream(stream)
        except FileNotFoundError:
            raise NotFoundError(f"no file {str(path)!r} to store") from None
        except IsADirectoryError:
            raise ValidationError(f"{str(path)!r} is a directory; store files one by one") from None

    def put_stream(self, stream: IO[bytes], *, expect: str | None = None) -> BlobRef:
        """Store everything ``stream`` yields, in chunks; never holds the whole content.

        With ``expect``, the content must hash to that digest, else nothing is stored and
        ``IntegrityError`` is raised (used when copying blobs between stores).
        """
        expected = None if expect is None else check_digest(expect)
        temp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.root)
            temp = Path(name)
            ref = self._write_temp(fd, stream)
            if expected is not None and ref.digest != expected:
                raise corrupt(expected, ref.digest)
            os.chmod(temp, BLOB_MODE)
            self._install(temp, ref)
            return ref
        except OSError as exc:
            raise StoreError(f"cannot write a blob under {self.root}: {exc}") from exc
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    @staticmethod
    def _write_temp(fd: int, stream: IO[bytes]) -> BlobRef:
        """Copy ``stream`` into the open temp file ``fd``, hashing it; fsync; close."""
        sha, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise ValidationError("a blob needs a binary stream (open files with 'rb')")
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return BlobRef(sha.hexdigest(), size)

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move ``temp`` into place unless an intact blob is there already."""
        target = self.path(ref.digest)
        target.parent.mkdir(exist_ok=True)
        if self._intact(target, ref.size):
            return
        try:
            os.link(temp, target)  # fails, rather than replaces, if another writer won
        except FileExistsError:
            if self._intact(target, ref.size):
                return
            os.replace(temp, target)  # a leftover of the wrong size: repair it
        except OSError:
            os.replace(temp, target)  # no hard links on this file system
        fsync_dir(target.parent)

    @staticmethod
    def _intact(target: Path, size: int) -> bool:
        try:
            return target.stat().st_size == size
        except FileNotFoundError:
            return False

    # -- reading ----------------------------------------------------------------------------
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
                fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc}") from exc
            temp = Path(name)
            try:
                self._copy_checked(source, fd, digest)
                os.chmod(temp, FETCHED_MODE)
                os.replace(temp, target)
                fsync_dir(target.parent)
            except OSError as exc:
                raise StoreError(f"cannot write {target}: {exc}") from exc
            finally:
                temp.unlink(missing_ok=True)
        return target

    def _copy_checked(self, source: IO[bytes], fd: int, digest: str) -> None:
        ref = self._write_temp(fd, source)
        if ref.digest != digest:
            raise corrupt(digest, ref.digest)

    # -- checking ---------------------------------------------------------------------------
    def hash_of(self, digest: str) -> str:
        """The SHA-256 of the blob's content as it is on disk now."""
        sha = hashlib.sha256()
        with self.open(digest) as handle:
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
        return sha.hexdigest()

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


class HashingReader(io.RawIOBase):
    """Reads a blob file, hashing as it goes; at the end, a mismatch raises IntegrityError."""

    def __init__(self, handle: BinaryIO, digest: str) -> None:
        super().__init__()
        self._handle = handle
        self._digest = digest
        self._sha = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._handle.read(len(view))
        if data:
            view[: len(data)] = data
            self._sha.update(data)
        elif not self._checked:
            self._checked = True
            if self._sha.hexdigest() != self._digest:
                raise corrupt(self._digest, self._sha.hexdigest())
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    fd = os.open(folder, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
