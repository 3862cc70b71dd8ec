"""The blob store: files kept by the hash of their content, SHA-256 unless a writer asks for
BLAKE3 (see ``local.BlobStore``)."""

from runyard.blobs.digests import BLAKE3, SHA256, BlobRef, check_digest, hash_bytes
from runyard.blobs.local import BlobStore

__all__ = ["BLAKE3", "SHA256", "BlobRef", "BlobStore", "check_digest", "hash_bytes"]
