"""The blob routes of a runyard server, as the small client ``RemoteBlobStore`` takes.

``runyard.blobs`` may not import the stores, so ``runyard.blobs.remote.RemoteBlobStore`` is
handed this object (``HttpStore.blob_client``) and uses only its four methods: ``missing``,
``has``, ``upload`` and ``download``. Uploads and downloads stream (a blob may be larger than
memory) and are retried whole, with the client's backoff, when the connection fails.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from runyard.errors import BlobNotFound
from runyard.stores.httpclient import RETRYABLE, HttpClient, error_from

MISSING_PAGE = 10_000  # the most digests one ``POST /blobs/missing`` may ask about
CHUNK = 1 << 20


class ServerBlobs:
    """The ``/blobs`` routes of one server."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"ServerBlobs({self.client.origin!r})"

    def missing(self, digests: list[str]) -> list[str]:
        """Those of ``digests`` the server does not have."""
        lacking: list[str] = []
        for at in range(0, len(digests), MISSING_PAGE):
            doc = self.client.call("POST", "/blobs/missing",
                                   {"digests": digests[at:at + MISSING_PAGE]})
            lacking.extend(doc["missing"])
        return lacking

    def has(self, digest: str) -> bool:
        reply = self.client.send("HEAD", f"/blobs/{digest}", ok=lambda status: status == 404)
        return reply.response.status_code == 200

    def upload(self, digest: str, path: Path) -> None:
        """Send the file at ``path`` as the blob ``digest`` (the server checks the hash)."""
        self.client.send("PUT", f"/blobs/{digest}", content=lambda: _chunks(path),
                         headers={"content-type": "application/octet-stream"})

    def download(self, digest: str, into: BinaryIO) -> None:
        """Write the blob's bytes to ``into`` (rewound and cut on a retry); BlobNotFound."""
        deadline = time.monotonic() + self.client.patience
        tries = 0
        while True:
            try:
                self._download_once(digest, into)
                return
            except RETRYABLE as exc:
                tries += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.client.gave_up("GET", f"/blobs/{digest}", exc) from exc
                time.sleep(min(left, random.uniform(0, min(2.0, 0.05 * 2 ** tries))))
                into.seek(0)
                into.truncate()

    def _download_once(self, digest: str, into: BinaryIO) -> None:
        with self.client.client.stream("GET", f"/blobs/{digest}") as response:
            if response.status_code == 404:
                raise BlobNotFound(digest)
            if not response.is_success:
                response.read()
                error = error_from(response)
                if response.status_code >= 500:
                    raise httpx.RemoteProtocolError(str(error))  # (retried like a lost line)
                raise error
            for piece in response.iter_bytes(CHUNK):
                into.write(piece)


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while piece := source.read(CHUNK):
            yield piece
