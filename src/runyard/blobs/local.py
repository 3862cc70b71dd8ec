"""A content-addressed blob store on the local file system.

Each blob is the file ``<root>/<first 2 hex digits>/<other 62 hex digits>`` named by the
SHA-256 of its content. Writers stream into a temporary file inside ``root`` while hashing,
fsync it, then move it into place; the move is a hard link where the file system has them, so a
blob that is already there is never replaced, and several processes may put the same content at
once. Blob files are made read-only: content-addressed data never changes in place.

Bulk data whose hashing would bound its speed (the chunks of buffers) may be addressed by
BLAKE3 instead, as strong a hash and about twenty times faster than SHA-256 on a CPU without
SHA instructions: such a digest reads ``blake3:<64 hex digits>`` and its blob lives under
``<root>/blake3/``. Every operation takes either kind of digest and checks content with the
hash its digest names.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from runyard.blobs.digests import (
    B3_PREFIX,
    BLAKE3,
    DIGEST,
    SHA256,
    BlobRef,
    HashingReader,
    algorithm,
    check_digest,
    corrupt,
    digest_of,
    hash_bytes,
    hasher,
)
from runyard.errors import BlobNotFound, NotFoundError, StoreError, ValidationError
from runyard.fsio import fsync_dir

CHUNK = 1 << 20  # bytes read and written at a time
DIRECT_UNIT = 4096  # direct writes cover whole pages
TEMP_PREFIX = ".tmp-"
BLOB_MODE = 0o444
FETCHED_MODE = 0o644
_FANOUT = re.compile(r"^[0-9a-f]{2}\Z")


def _parts(digest: str) -> tuple[str, ...]:
    """The blob's path under the root: two hex digits of fan-out, then the rest."""
    digest = check_digest(digest)
    if digest.startswith(B3_PREFIX):
        hexdigest = digest[len(B3_PREFIX):]
        return BLAKE3, hexdigest[:2], hexdigest[2:]
    return digest[:2], digest[2:]


class BlobStore:
    """Blobs under ``root`` (created on demand), addressed by the hash of their content."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self._root = str(self.root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    # -- addressing -------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        return self.root.joinpath(*_parts(digest))

    def exists(self, digest: str) -> bool:
        return os.path.isfile(os.path.join(self._root, *_parts(digest)))  # (no Path: faster)

    def __contains__(self, digest: object) -> bool:
        """``digest in blobs``: False for anything that is not a stored digest."""
        return isinstance(digest, str) and bool(DIGEST.match(digest.lower())) and self.exists(
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
        """Every stored digest, in sorted order (SHA-256 ones first); temporary files are
        skipped."""
        yield from _digests_under(self.root, "")
        yield from _digests_under(self.root / BLAKE3, B3_PREFIX)

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
    def put_bytes(self, data: bytes | bytearray | memoryview, hash_name: str = SHA256) -> BlobRef:
        """Store ``data`` (hashed once, in place, with ``hash_name``; no copy is made)."""
        return self.put_hashed(data, hash_bytes(data, hash_name))

    def put_hashed(self, data: bytes | bytearray | memoryview, ref: BlobRef, *,
                   aligned: bool = False) -> BlobRef:
        """Store ``data`` whose digest ``ref`` the caller computed with ``hash_bytes``.

        Content that is stored already is not written again: the blob there is kept.
        Otherwise it goes to a temporary file that is fsynced and then moved into place.
        ``aligned``: ``data`` starts on a memory page (an ``mmap``), so its whole pages are
        written straight to the disk (``O_DIRECT``), without a copy into the page cache."""
        view = memoryview(data).cast("B")
        if len(view) != ref.size:
            raise ValidationError(f"a blob of {len(view)} bytes given as {ref.size} bytes")
        try:
            if self._intact(self.path(ref.digest), ref.size):
                return ref
        except OSError as exc:
            raise self._write_error(exc) from exc
        with self._temp() as (fd, temp):
            try:
                if aligned:
                    view = _write_direct(fd, view)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, BLOB_MODE)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._install(temp, ref)
        return ref

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
        with self._temp() as (fd, temp):
            ref = self._write_temp(fd, stream, SHA256 if expected is None else algorithm(expected))
            if expected is not None and ref.digest != expected:
                raise corrupt(expected, ref.digest)
            os.chmod(temp, BLOB_MODE)
            self._install(temp, ref)
        return ref

    @contextlib.contextmanager
    def _temp(self) -> Iterator[tuple[int, Path]]:
        """A new temporary file in ``root`` (open, for the caller to write and close),
        removed afterwards unless it was moved into place; an ``OSError`` becomes
        ``StoreError``."""
        temp = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, temp = make_temp(self.root)
            yield fd, temp
        except OSError as exc:
            raise self._write_error(exc) from exc
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def _write_error(self, exc: OSError) -> StoreError:
        return StoreError(f"cannot write a blob under {self.root}: {exc}")

    @staticmethod
    def _write_temp(fd: int, stream: IO[bytes], hash_name: str = SHA256) -> BlobRef:
        """Copy ``stream`` into the open temp file ``fd``, hashing it; fsync; close."""
        sha, size = hasher(hash_name), 0
        readinto = getattr(stream, "readinto", None)
        buf = bytearray(CHUNK) if readinto is not None else None
        with os.fdopen(fd, "wb", buffering=0) as out:
            while True:
                if buf is not None and readinto is not None:
                    n = readinto(buf)
                    if n is None:
                        raise ValidationError("a blob needs a blocking stream")
                    chunk: object = memoryview(buf)[:n] if n else b""
                else:
                    chunk = stream.read(CHUNK)
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise ValidationError("a blob needs a binary stream (open files with 'rb')")
                if not chunk:
                    break
                sha.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) or 0:]
                size += len(chunk)
            os.fsync(out.fileno())
        return BlobRef(digest_of(sha, hash_name), size)

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move ``temp`` into place unless an intact blob is there already."""
        target = self.path(ref.digest)
        target.parent.mkdir(parents=True, exist_ok=True)
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
        ref = self._write_temp(fd, source, algorithm(digest))
        if ref.digest != digest:
            raise corrupt(digest, ref.digest)

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


def _write_direct(fd: int, view: memoryview) -> memoryview:
    """Write the whole pages of a page-aligned ``view`` to ``fd`` with ``O_DIRECT`` (where the
    file system allows it); the rest of ``view``, still to be written the usual way."""
    import fcntl

    flag = getattr(os, "O_DIRECT", 0)
    whole = len(view) - len(view) % DIRECT_UNIT
    if not flag or not whole:
        return view
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag)
    except OSError:
        return view  # a file system without direct I/O
    try:
        done = 0
        while done < whole:
            done += os.write(fd, view[done:whole])
    except OSError as exc:
        if exc.errno != errno.EINVAL or done:
            raise
        return view  # refused (alignment the device wants): written the usual way
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return view[whole:]


def _digests_under(root: Path, prefix: str) -> Iterator[str]:
    if not root.is_dir():
        return
    for fan in sorted(p for p in root.iterdir() if _FANOUT.match(p.name)):
        if not fan.is_dir():
            continue
        for entry in sorted(fan.iterdir()):
            digest = prefix + fan.name + entry.name
            if DIGEST.match(digest) and entry.is_file():
                yield digest


def make_temp(folder: Path) -> tuple[int, Path]:
    """A new temporary file in ``folder``, open for writing (the ``tempfile`` module would
    cost an import of ``random`` and ``shutil`` at every start, for this one call)."""
    for _ in range(100):
        path = folder / f"{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")
