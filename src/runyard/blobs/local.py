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
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from runyard.blobs.copying import copy_file, copy_hashed, copy_loop, source_fd, source_of
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

if TYPE_CHECKING:
    from runyard.blobs.batch import BlobBatch

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
                touch(self.path(ref.digest))
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
        """Store the file at ``path`` (read once, hashed while copied), durably."""
        with self.batch() as one:
            return one.put_file(path)

    def put_stream(self, stream: IO[bytes], *, expect: str | None = None) -> BlobRef:
        """Store everything ``stream`` yields, in chunks; never holds the whole content.

        With ``expect``, the content must hash to that digest, else nothing is stored and
        ``IntegrityError`` is raised (used when copying blobs between stores).
        """
        with self.batch() as one:
            return one.put_stream(stream, expect=expect)

    def batch(self) -> BlobBatch:
        """Puts made durable together by one ``commit`` (see ``runyard.blobs.batch``): many
        blobs at copy speed instead of two disk flushes each."""
        from runyard.blobs.batch import BlobBatch

        return BlobBatch(self)

    def write_file(self, path: Path | str) -> tuple[Path, BlobRef]:
        """Copy the file at ``path`` into a new temporary file of the store, hashing it; the
        temporary file (not synced yet; the caller places or removes it) and the digest.

        A regular file is copied by descriptor (``copying.copy_file``), with no file object
        around it: 200 x 100 KB took ~195 us a file through ``write_stream``, ~130-150 so."""
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError(f"no file {str(path)!r} to store") from None
        try:
            info = os.fstat(src)
            if stat.S_ISREG(info.st_mode):
                temp, ref = self._copy_in(src, info.st_size)
                return Path(temp), ref
            if stat.S_ISDIR(info.st_mode):
                raise ValidationError(f"{str(path)!r} is a directory; store files one by one")
            with open(src, "rb", buffering=0, closefd=False) as stream:  # a pipe, a device
                return self.write_stream(stream)
        finally:
            os.close(src)

    def _copy_in(self, src: int, size: int, hash_name: str = SHA256) -> tuple[str, BlobRef]:
        """Copy the regular file open at ``src`` into a new temporary file (read-only, not
        synced); its name and the blob's digest. An ``OSError`` becomes ``StoreError``."""
        temp = None
        try:
            fd, temp = self._new_temp(BLOB_MODE)
            try:
                sha = hasher(hash_name)
                size = copy_file(src, fd, size, sha)
            finally:
                os.close(fd)
            return temp, BlobRef(digest_of(sha, hash_name), size)
        except BaseException as exc:
            if temp is not None:
                _unlink(temp)
            if isinstance(exc, OSError):
                raise self._write_error(exc) from exc
            raise

    def _new_temp(self, mode: int) -> tuple[int, str]:
        """A new temporary file in ``root`` (created on demand), open to write and read."""
        try:
            return _make_temp(self._root, mode)
        except FileNotFoundError:
            os.makedirs(self._root, exist_ok=True)
            return _make_temp(self._root, mode)

    def write_stream(self, stream: IO[bytes], *,
                     expect: str | None = None) -> tuple[Path, BlobRef]:
        """Like ``write_file``, for everything ``stream`` yields; with ``expect``, the content
        must hash to that digest (else ``IntegrityError`` and nothing is kept)."""
        expected = None if expect is None else check_digest(expect)
        name = SHA256 if expected is None else algorithm(expected)
        found = source_of(stream)
        if found is not None:  # a regular file: copied by descriptor (see write_path)
            temp, ref = self._copy_in(found[0], found[1], name)
        else:
            with self._temp(keep=True, mode=BLOB_MODE) as (fd, path):  # (the fd still writes)
                ref = self._write_temp(fd, stream, name, sync=False)
            temp = str(path)
        if expected is not None and ref.digest != expected:
            _unlink(temp)
            raise corrupt(expected, ref.digest)
        return Path(temp), ref

    @contextlib.contextmanager
    def _temp(self, keep: bool = False, mode: int = 0o600) -> Iterator[tuple[int, Path]]:
        """A new temporary file in ``root`` with permissions ``mode`` (open, for the caller
        to write and close), removed afterwards (with ``keep``, only on an error); an
        ``OSError`` becomes ``StoreError``."""
        temp, kept = None, False
        try:
            try:
                fd, temp = make_temp(self.root, mode)
            except FileNotFoundError:
                self.root.mkdir(parents=True, exist_ok=True)
                fd, temp = make_temp(self.root, mode)
            yield fd, temp
            kept = keep
        except OSError as exc:
            raise self._write_error(exc) from exc
        finally:
            if temp is not None and not kept:
                temp.unlink(missing_ok=True)

    def _write_error(self, exc: OSError) -> StoreError:
        return StoreError(f"cannot write a blob under {self.root}: {exc}")

    @staticmethod
    def _write_temp(fd: int, stream: IO[bytes], hash_name: str = SHA256, *,
                    sync: bool = True) -> BlobRef:
        """Copy ``stream`` into the open temp file ``fd`` (readable too), hashing the bytes
        as they are written (``runyard.blobs.copying``); fsync it unless ``sync`` is false
        (its batch syncs it later); close."""
        sha = hasher(hash_name)
        with os.fdopen(fd, "wb", buffering=0) as out:
            src = source_fd(stream)
            size = None if src is None else copy_hashed(src, fd, sha)
            if size is None:
                size = copy_loop(stream, out, sha)
            if sync:
                os.fsync(fd)
        return BlobRef(digest_of(sha, hash_name), size)

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move the synced ``temp`` into place unless an intact blob is there already."""
        folder = self.place(temp, ref)
        if folder is not None:
            fsync_dir(Path(folder))

    def place(self, temp: Path | str, ref: BlobRef) -> str | None:
        """Link the synced ``temp`` into place under its digest unless an intact blob is there
        already; the folder whose entry changed (to be synced), or ``None``."""
        target = os.path.join(self._root, *_parts(ref.digest))  # (no Path: many in a batch)
        try:
            try:
                os.link(temp, target)  # fails, rather than replaces, if another writer won
            except FileNotFoundError:  # the first blob of its fan-out folder
                _make_folder(os.path.dirname(target))
                os.link(temp, target)
        except FileExistsError:
            if self._intact(Path(target), ref.size):
                touch(target)
                return None
            os.replace(temp, target)  # a leftover of the wrong size: repair it
        except OSError:
            os.replace(temp, target)  # no hard links on this file system
        return os.path.dirname(target)

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


def make_temp(folder: Path, mode: int = 0o600) -> tuple[int, Path]:
    """A new temporary file in ``folder``, open to write and read (the ``tempfile`` module would
    cost an import of ``random`` and ``shutil`` at every start, for this one call)."""
    fd, path = _make_temp(str(folder), mode)
    return fd, Path(path)


def _make_temp(folder: str, mode: int) -> tuple[int, str]:
    for _ in range(100):
        path = f"{folder}/{TEMP_PREFIX}{os.urandom(8).hex()}"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def touch(path: Path | str) -> None:
    """Renew the mtime of a blob found already there when put again: a garbage collection
    (``runyard.recording.collect``) keeps blobs younger than its grace period, so a writer
    that reuses an old blob before it writes the entry naming it does not lose it."""
    with contextlib.suppress(OSError):  # (another user's blob in a shared store)
        os.utime(path)


def _make_folder(folder: str) -> None:
    """Make a fan-out folder (and the ``blake3`` one above it if need be)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
