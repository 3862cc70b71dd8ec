"""A content-addressed blob store on the local file system.

Each blob is the file ``<root>/<first 2 hex digits>/<other 62 hex digits>`` named by the
SHA-256 of its content (``runyard.blobs.layout``). Writers stream into a temporary file inside
``root`` while hashing (``runyard.blobs.tempfiles``), fsync it, then move it into place; the
move is a hard link where the file system has them, so a blob that is already there is never
replaced, and several processes may put the same content at once. Blob files are made
read-only: content-addressed data never changes in place. This module writes; reading and
checking are ``runyard.blobs.reading``'s, many puts made durable at once ``batch``'s.

Bulk data whose hashing would bound its speed (the chunks of buffers) may be addressed by
BLAKE3 instead, as strong a hash and about twenty times faster than SHA-256 on a CPU without
SHA instructions: such a digest reads ``blake3:<64 hex digits>`` and its blob lives under
``<root>/blake3/``. Every operation takes either kind of digest and checks content with the
hash its digest names.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from runyard.blobs.copying import copy_file, copy_stream, source_of, write_direct
from runyard.blobs.digests import (
    DIGEST,
    SHA256,
    BlobRef,
    algorithm,
    check_digest,
    corrupt,
    digest_of,
    hash_bytes,
    hasher,
)
from runyard.blobs.layout import make_folder, parts
from runyard.blobs.layout import touch as touch
from runyard.blobs.reading import CHUNK as CHUNK
from runyard.blobs.reading import BlobReading
from runyard.blobs.tempfiles import TEMP_PREFIX as TEMP_PREFIX
from runyard.blobs.tempfiles import Temp, drop_temp, link_unnamed, name_temp, new_named, new_unnamed
from runyard.blobs.tempfiles import make_temp as make_temp
from runyard.errors import NotFoundError, StoreError, ValidationError
from runyard.fsio import fsync_dir

if TYPE_CHECKING:
    from runyard.blobs.batch import BlobBatch

BLOB_MODE = 0o444


class BlobStore(BlobReading):
    """Blobs under ``root`` (created on demand), addressed by the hash of their content."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()
        self._root = str(self.root)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    # -- addressing -------------------------------------------------------------------------
    def path(self, digest: str) -> Path:
        """Where the blob with ``digest`` lives (whether or not it exists)."""
        return self.root.joinpath(*parts(digest))

    def exists(self, digest: str) -> bool:
        return os.path.isfile(os.path.join(self._root, *parts(digest)))  # (no Path: faster)

    def __contains__(self, digest: object) -> bool:
        """``digest in blobs``: False for anything that is not a stored digest."""
        return isinstance(digest, str) and bool(DIGEST.match(digest.lower())) and self.exists(
            digest
        )

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
                    view = write_direct(fd, view)
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

    def write_file(self, path: Path | str, *, unnamed: bool = False) -> tuple[Temp, BlobRef]:
        """Copy the file at ``path`` into a new temporary file of the store, hashing it; the
        temporary file (not synced yet; the caller places it or drops it: ``tempfiles``) and
        the digest. ``unnamed``: a regular file goes into an unnamed temporary file where the
        store's file system has them (its descriptor is returned, open).

        A regular file is copied by descriptor (``copying.copy_file``), with no file object
        around it: 200 x 100 KB took ~195 us a file through ``write_stream``, ~130-150 so."""
        try:
            src = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError(f"no file {str(path)!r} to store") from None
        try:
            info = os.fstat(src)
            if stat.S_ISREG(info.st_mode):
                return self._copy_in(src, info.st_size, unnamed=unnamed)
            if stat.S_ISDIR(info.st_mode):
                raise ValidationError(f"{str(path)!r} is a directory; store files one by one")
            with open(src, "rb", buffering=0, closefd=False) as stream:  # a pipe, a device
                return self.write_stream(stream)
        finally:
            os.close(src)

    def _copy_in(self, src: int, size: int, hash_name: str = SHA256, *,
                 unnamed: bool = False) -> tuple[Temp, BlobRef]:
        """Copy the regular file open at ``src`` into a new temporary file (read-only, not
        synced); the file and the blob's digest. An ``OSError`` becomes ``StoreError``."""
        temp: Temp | None = None
        try:
            fd, temp = self._new_temp(unnamed)
            try:
                sha = hasher(hash_name)
                size = copy_file(src, fd, size, sha)
            finally:
                if isinstance(temp, str):  # (a named file is closed now, an unnamed one kept)
                    os.close(fd)
            return temp, BlobRef(digest_of(sha, hash_name), size)
        except BaseException as exc:
            if temp is not None:
                drop_temp(temp)
            if isinstance(exc, OSError):
                raise self._write_error(exc) from exc
            raise

    def _new_temp(self, unnamed: bool) -> tuple[int, Temp]:
        """A new temporary file in ``root`` (created on demand), open to write and read: an
        unnamed one where asked for and possible, else a named one (its path)."""
        fd = new_unnamed(self._root, BLOB_MODE) if unnamed else None
        if fd is None and unnamed and not os.path.isdir(self._root):  # the store's first put
            os.makedirs(self._root, exist_ok=True)
            fd = new_unnamed(self._root, BLOB_MODE)
        if fd is not None:
            return fd, fd
        try:
            return new_named(self._root, BLOB_MODE)
        except FileNotFoundError:
            os.makedirs(self._root, exist_ok=True)
            return new_named(self._root, BLOB_MODE)

    def write_stream(self, stream: IO[bytes], *, expect: str | None = None) -> tuple[Temp, BlobRef]:
        """Like ``write_file``, for everything ``stream`` yields; with ``expect``, the content
        must hash to that digest (else ``IntegrityError`` and nothing is kept)."""
        expected = None if expect is None else check_digest(expect)
        name = SHA256 if expected is None else algorithm(expected)
        found = source_of(stream)
        temp: Temp
        if found is not None:  # a regular file: copied by descriptor (see write_file)
            temp, ref = self._copy_in(found[0], found[1], name)
        else:
            with self._temp(keep=True, mode=BLOB_MODE) as (fd, path):  # (the fd still writes)
                ref = copy_stream(fd, stream, name, sync=False)
            temp = str(path)
        if expected is not None and ref.digest != expected:
            drop_temp(temp)
            raise corrupt(expected, ref.digest)
        return temp, ref

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

    def _install(self, temp: Path, ref: BlobRef) -> None:
        """Move the synced ``temp`` into place unless an intact blob is there already."""
        folder = self.place(temp, ref)
        if folder is not None:
            fsync_dir(Path(folder))

    def place(self, temp: Temp | Path, ref: BlobRef) -> str | None:
        """Link the synced temporary file into place under its digest unless an intact blob is
        there already; the folder whose entry changed (to be synced), or ``None``. The caller
        still drops ``temp`` afterwards."""
        target = os.path.join(self._root, *parts(ref.digest))  # (no Path: many in a batch)
        temp = temp if isinstance(temp, int) else str(temp)
        try:
            try:
                _link(temp, target)  # fails, rather than replaces, if another writer won
            except FileNotFoundError:  # the first blob of its fan-out folder
                make_folder(os.path.dirname(target))
                _link(temp, target)
        except FileExistsError:
            if self._intact(Path(target), ref.size):
                touch(target)
                return None
            os.replace(name_temp(temp, self._root), target)  # a leftover of the wrong size
        except OSError:
            if isinstance(temp, int):
                raise
            os.replace(temp, target)  # no hard links on this file system
        return os.path.dirname(target)

    @staticmethod
    def _intact(target: Path, size: int) -> bool:
        try:
            return target.stat().st_size == size
        except FileNotFoundError:
            return False


def _link(temp: Temp, target: str) -> None:
    if isinstance(temp, int):
        link_unnamed(temp, target)
    else:
        os.link(temp, target)
