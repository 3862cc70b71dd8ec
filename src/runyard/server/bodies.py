"""Request bodies read as plain blocking streams, so the stores' streaming code takes them.

The blob store and the buffer writer read from file objects in worker threads; an HTTP body
arrives as an async iterator of chunks on the event loop. ``BodyReader`` joins the two: a
thread's ``readinto`` fetches chunks from the loop (``anyio.from_thread``), so a body of any
size passes through with at most one read's worth (1 MB) in memory. A trip from the thread to
the loop costs 90-140 us here, and the socket gives chunks of about 64 KB: one trip per chunk
would be 1.5-2 ms per MB, half what hashing the MB costs, so a read gathers chunks up to its
buffer's size (one trip per MB). A client that goes away midway
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

    def __init__(self, chunks: AsyncIterator[bytes], *, gather: bool = True) -> None:
        """``gather``: a read waits for enough chunks to fill its buffer (see the module
        docstring); without it a read returns what the next chunk holds, so what was received
        so far is written at once (a resumable upload's ``received`` keeps up with the body)."""
        super().__init__()
        self._chunks, self._gather_all = chunks, gather
        self._pending = memoryview(b"")
        self._ended = self._gone = False
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
            if self._gone:
                raise ClientGone()
            chunk = anyio.from_thread.run(self._gather, len(view) if self._gather_all else 1)
            if chunk is None:
                self._ended = True
            else:
                self._pending = memoryview(chunk)
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.count += n
        return n

    async def _gather(self, want: int) -> bytes | None:
        """Chunks of the body up to about ``want`` bytes, joined (one trip from the reading
        thread to the event loop per buffer, not per chunk of the socket); None at the end."""
        parts: list[bytes] = []
        size = 0
        while size < want:
            try:
                chunk = await self._next()
            except ClientGone:
                if not parts:
                    raise
                self._gone = True  # (what came before is handed out first)
                break
            if chunk is None:
                self._ended = True
                break
            parts.append(chunk)
            size += len(chunk)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else b"".join(parts)

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
