"""The blob routes of a runyard server, as the small client ``RemoteBlobStore`` takes.

``runyard.blobs`` may not import the stores, so ``runyard.blobs.remote.RemoteBlobStore`` is
handed this object (``HttpStore.blob_client``) and uses only its four methods: ``missing``,
``has``, ``upload`` and ``download``. Uploads and downloads stream (a blob may be larger than
memory) with the client's backoff when the connection fails: a download is retried whole, an
upload of ``RESUME_FROM`` bytes or more resumes where the server stands (``Content-Range``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx
import orjson

from runyard.errors import BlobNotFound
from runyard.stores.httpclient import RETRYABLE, HttpClient, error_from

MISSING_PAGE = 10_000  # the most digests one ``POST /blobs/missing`` may ask about
CHUNK = 1 << 20
RESUME_FROM = 8 << 20  # blobs from this size are uploaded resumably (Content-Range)
DONE, MORE = "done", "more"


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
        """Send the file at ``path`` as the blob ``digest`` (the server checks the hash); a
        big one with ``Content-Range``, so a broken upload resumes where the server stands."""
        size = path.stat().st_size
        if size < RESUME_FROM:
            self.client.send("PUT", f"/blobs/{digest}", content=lambda: _chunks(path),
                             headers={"content-type": "application/octet-stream"})
            return
        deadline = time.monotonic() + self.client.patience
        offset, tries = 0, 0
        while True:
            failure, offset = self._piece(digest, path, offset, size)
            if failure == DONE:
                return
            if failure == MORE:
                continue
            assert isinstance(failure, Exception)
            tries += 1
            if time.monotonic() >= deadline:
                raise self.client.gave_up("PUT", f"/blobs/{digest}", failure)
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** tries)))
            if isinstance(failure, RETRYABLE):  # where does the upload stand now?
                offset = self._received(digest, deadline)

    def _piece(self, digest: str, path: Path, offset: int, size: int
               ) -> tuple[Exception | str, int]:
        """Send the file from ``offset`` on: (DONE, size) once stored, (MORE, where to go on
        from) when the server kept a part, else (why not, where to go on from)."""
        headers = {"content-type": "application/octet-stream",
                   "content-range": f"bytes {offset}-{size - 1}/{size}"}
        try:
            response = self.client.client.request("PUT", f"/blobs/{digest}", headers=headers,
                                                  content=_chunks(path, offset))
        except RETRYABLE as exc:
            return exc, offset
        if response.status_code == 201:
            return DONE, size
        if response.status_code == 202:
            return MORE, int(orjson.loads(response.content)["received"])
        error = error_from(response)
        if response.status_code == 409:  # not where it stands, or another writer: from there
            return error, int(orjson.loads(response.content).get("received", offset))
        if response.status_code < 500:
            raise error
        return error, offset

    def _received(self, digest: str, deadline: float) -> int:
        left = max(0.1, deadline - time.monotonic())
        return int(self.client.call("GET", f"/blobs/{digest}/upload", patience=left)["received"])

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


def _chunks(path: Path, offset: int = 0) -> Iterator[bytes]:
    with open(path, "rb") as source:
        source.seek(offset)
        while piece := source.read(CHUNK):
            yield piece
