"""The blob store: files kept by the SHA-256 of their content (see ``local.BlobStore``)."""

from runyard.blobs.local import BlobRef, BlobStore, check_digest, hash_bytes

__all__ = ["BlobRef", "BlobStore", "check_digest", "hash_bytes"]
