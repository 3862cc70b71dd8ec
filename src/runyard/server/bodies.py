"""Request bodies read as plain blocking streams, so the stores' streaming code takes them.

The blob store and the buffer writer read from file objects in worker threads; an HTTP body
arrives as an async iterator of chunks on the event loop. ``BodyReader`` joins the two: a
thread's ``readinto`` fetches the next chunk from the loop (``anyio.from_thread``), so a body
of any size passes through with at most one chunk in memory. A client that goes away midway
surfaces as ``ClientGone`` in the reading thread (a buffer being written records it as the
reason it is incomplete).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, cast

import anyio.from_thread
from starlette.requests import ClientDisconnect

from runyard.errors import ValidationError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class ClientGone(ValidationError):
    """The client went away before the end of the body it was sending."""

    def __init__(self) -> None:
        super().__init__("the client went away before the end of the body")


class BodyReader(io.RawIOBase):
    """A blocking, read-once stream over an async iterator of byte chunks (read in a worker
    thread of the event loop's threadpool)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._ended = False
        self.count = 0  # bytes handed out so far

    def readable(self) -> bool:
        return True

    def stream(self) -> IO[bytes]:
        """This reader, typed as the binary file object it is."""
        return cast("IO[bytes]", self)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._ended:
                return 0
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.count += n
        return n

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None
        except ClientDisconnect:
            raise ClientGone() from None

    def drain(self) -> int:
        """Read (and drop) the rest of the body, so the connection can serve the next request;
        how many bytes were dropped."""
        dropped, self._pending = len(self._pending), memoryview(b"")
        while not self._ended:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._ended = True
            else:
                dropped += len(chunk)
        return dropped
