"""The blobs of a runyard server, kept through a local cache folder.

A ``RemoteBlobStore`` is a local ``BlobStore`` (the cache: ``RUNYARD_BLOBS``, else the user's
cache folder per server) that writes through to the server: every put, and every batch at its
commit, uploads the blobs the server lacks (``POST /blobs/missing``, then ``PUT
/blobs/{digest}``), so once a put or commit returns, the server has the bytes and a catalog
entry may name them. A read of a blob missing from the cache downloads it first (``GET
/blobs/{digest}``) into a temporary file, checks its hash and only then places it.

The blobs layer does not import the stores: the server is reached through a small client
handed in (``runyard.stores.httpblobs.ServerBlobs``), used by duck typing (``BlobServer``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Protocol

from runyard.blobs.batch import BlobBatch
from runyard.blobs.digests import BlobRef, algorithm, check_digest, corrupt, digest_of, hasher
from runyard.blobs.local import BLOB_MODE, CHUNK, BlobStore
from runyard.blobs.tempfiles import Temp
from runyard.errors import BlobNotFound, RunyardError


class BlobServer(Protocol):
    """What a ``RemoteBlobStore`` needs of the server."""

    def missing(self, digests: list[str]) -> list[str]: ...
    def has(self, digest: str) -> bool: ...
    def upload(self, digest: str, path: Path) -> None: ...
    def download(self, digest: str, into: BinaryIO) -> None: ...


class RemoteBlobStore(BlobStore):
    """A local cache under ``root`` of the blobs of ``server`` (see the module docstring)."""

    def __init__(self, root: Path | str, server: BlobServer) -> None:
        super().__init__(root)
        self.server = server
        self._on_server: set[str] = set()  # digests the server is known to have

    def __repr__(self) -> str:
        return f"RemoteBlobStore({str(self.root)!r}, {self.server!r})"

    # -- writing: through to the server ------------------------------------------------------
    def put_hashed(self, data: bytes | bytearray | memoryview, ref: BlobRef, *,
                   aligned: bool = False) -> BlobRef:
        super().put_hashed(data, ref, aligned=aligned)
        self.upload([ref.digest])
        return ref

    def batch(self) -> BlobBatch:
        return UploadingBatch(self)

    def upload(self, digests: list[str]) -> dict[str, str]:
        """Send the server those of ``digests`` (in the cache) it lacks; the ones that could
        not be sent (digest → why), empty when all are there."""
        failed: dict[str, str] = {}
        if not digests:
            return failed
        try:
            lacking = self.server.missing(sorted(set(digests)))
        except RunyardError as exc:
            return {digest: f"cannot reach the server: {exc}" for digest in digests}
        for digest in lacking:
            try:
                self.server.upload(digest, self.path(digest))
            except (RunyardError, OSError) as exc:
                failed[digest] = f"cannot upload it: {exc}"
        self._on_server.update(d for d in digests if d not in failed)
        return failed

    # -- reading: fetched on first use --------------------------------------------------------
    def exists(self, digest: str) -> bool:
        """Whether the server has the blob (a blob only in the cache, whose upload failed,
        does not count)."""
        digest = check_digest(digest)
        if digest not in self._on_server and self.server.has(digest):
            self._on_server.add(digest)
        return digest in self._on_server

    def fetch(self, digest: str) -> str:
        """Make sure the blob is in the cache (downloaded and checked if not); its digest."""
        digest = check_digest(digest)
        if super().exists(digest):
            return digest
        with self._temp(keep=True, mode=BLOB_MODE) as (fd, temp):
            try:
                with os.fdopen(os.dup(fd), "w+b") as into:
                    self.server.download(digest, into)
                    into.flush()
                    os.fsync(into.fileno())
            finally:
                os.close(fd)
        try:
            ref = BlobRef(_hash_file(temp, digest), temp.stat().st_size)
            if ref.digest != digest:
                raise corrupt(digest, ref.digest)
            self._install(temp, ref)
        finally:
            temp.unlink(missing_ok=True)
        return digest

    def open(self, digest: str, *, verify: bool = False) -> BinaryIO:
        return super().open(self.fetch(digest), verify=verify)

    def size(self, digest: str) -> int:
        return super().size(self.fetch(digest))

    def holds(self, digest: str, data: bytes | bytearray) -> bool:
        with contextlib.suppress(BlobNotFound):
            self.fetch(digest)
        return super().holds(digest, data)

    def copy_to(self, digest: str, dest: Path | str) -> Path:
        return super().copy_to(self.fetch(digest), dest)


class UploadingBatch(BlobBatch):
    """A batch whose commit also uploads the blobs it placed (those the server lacks)."""

    blobs: RemoteBlobStore

    def _place(self, taken: list[tuple[Temp, BlobRef]]) -> dict[str, str]:
        failed = super()._place(taken)
        placed = [ref.digest for _, ref in taken if ref.digest not in failed]
        return {**failed, **self.blobs.upload(placed)}


def _hash_file(path: Path, digest: str) -> str:
    name = algorithm(digest)
    sha = hasher(name)
    with open(path, "rb") as handle:
        while piece := handle.read(CHUNK):
            sha.update(piece)
    return digest_of(sha, name)
