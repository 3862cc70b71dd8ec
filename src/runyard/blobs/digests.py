"""Blob digests: SHA-256 (the default) or BLAKE3, checked, computed and verified.

A digest is 64 lowercase hex digits of SHA-256, or ``blake3:`` and 64 hex digits of BLAKE3
(as strong, and about twenty times faster on a CPU without SHA instructions: for bulk data
whose hashing would bound its speed, such as the chunks of buffers).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from runyard.errors import IntegrityError, ValidationError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SHA256, BLAKE3 = "sha256", "blake3"
B3_PREFIX = "blake3:"
DIGEST = re.compile(r"^(?:blake3:)?[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class BlobRef:
    """What a put returns: the content's digest and its size in bytes. The digest is the
    SHA-256 in lowercase hex, or ``blake3:`` and the BLAKE3 (see the module docstring)."""

    digest: str
    size: int


def check_digest(digest: str) -> str:
    """A blob digest in its canonical (lowercase) form, or ``ValidationError``."""
    if isinstance(digest, str) and DIGEST.match(digest.lower()):
        return digest.lower()
    raise ValidationError(
        f"invalid blob digest {str(digest)[:80]!r}: a SHA-256 digest is 64 hex characters "
        "(a BLAKE3 one, blake3: and 64 hex characters)"
    )


def algorithm(digest: str) -> str:
    """The hash a (canonical) digest names: ``sha256`` or ``blake3``."""
    return BLAKE3 if digest.startswith(B3_PREFIX) else SHA256


def corrupt(digest: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} is corrupt: its content hashes to {actual}; "
        "restore it from a copy of the store or put the original file again"
    )


def hasher(hash_name: str, data: bytes | bytearray | memoryview = b"") -> Any:
    """A hash object of ``hash_name`` (``hashlib`` loads OpenSSL, ``blake3`` its own
    extension: imported when first needed)."""
    if hash_name == BLAKE3:
        from blake3 import blake3

        return blake3(data)
    import hashlib

    return hashlib.sha256(data)


def digest_of(hasher: Any, hash_name: str) -> str:
    hexdigest = str(hasher.hexdigest())
    return B3_PREFIX + hexdigest if hash_name == BLAKE3 else hexdigest


def hash_bytes(data: bytes | bytearray | memoryview, hash_name: str = SHA256) -> BlobRef:
    """The digest (with ``hash_name``: ``sha256`` or ``blake3``) and size of ``data``,
    hashed in place (the GIL is released meanwhile)."""
    if hash_name not in (SHA256, BLAKE3):
        raise ValidationError(f"unknown hash {hash_name!r}; use {SHA256} or {BLAKE3}")
    view = memoryview(data).cast("B")
    return BlobRef(digest_of(hasher(hash_name, view), hash_name), len(view))


class HashingReader(io.RawIOBase):
    """Reads a blob file, hashing as it goes; at the end, a mismatch raises IntegrityError."""

    def __init__(self, handle: BinaryIO, digest: str) -> None:
        super().__init__()
        self._handle = handle
        self._digest = digest
        self._hash_name = algorithm(digest)
        self._sha = hasher(self._hash_name)
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
            actual = digest_of(self._sha, self._hash_name)
            if actual != self._digest:
                raise corrupt(self._digest, actual)
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()
