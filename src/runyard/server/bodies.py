"""Request bodies streamed into blocking writers without holding a thread while they arrive.

An upload arrives as an async iterator of chunks on the event loop; the blob store and the
buffer writer write with blocking calls. ``feed`` reads the body on the loop and hands what
arrived to ``write`` in a worker thread, about a megabyte at a time, so a body of any size
passes with at most that much in memory, and a slow uploader holds a thread only while its
bytes are written, not while the server waits for them (forty slow uploads would otherwise take
every thread of the pool, and every other route would wait).

A trip to a worker thread costs 90-140 us here and the socket gives chunks of about 64 KB: one
trip per chunk would be 1.5-2 ms per MB, more than hashing the MB (SHA-256 at 1.1 GB/s here),
hence the gathering. A 256 MB blob over loopback: 290-360 MB/s in, 450-480 MB/s out (buffers,
hashed with BLAKE3: 460-700 in, 590-650 out), against 120 MB/s in with one trip per chunk
(a busier machine then: load 7 against 4 on its 2 cores).
A client that goes away midway raises ``ClientGone`` once what it sent was written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import ClientDisconnect

from runyard.errors import ValidationError

GATHER = 1 << 20  # bytes handed to a writer at a time


class ClientGone(ValidationError):
    """The client went away before the end of the body it was sending."""

    def __init__(self) -> None:
        super().__init__("the client went away before the end of the body")


async def feed(chunks: AsyncIterator[bytes], write: Callable[[bytes], Any],
               gather: int = GATHER) -> int:
    """Hand the body to ``write`` (run in a worker thread) in pieces of about ``gather``
    bytes (1: each chunk as it comes); how many bytes. ``ClientGone`` if the client went away
    (what it sent before is written first)."""
    parts: list[bytes] = []
    held = total = 0
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            parts.append(chunk)
            held += len(chunk)
            if held >= gather:
                total += await _hand(write, parts)
                parts, held = [], 0
    except ClientDisconnect:
        await _hand(write, parts)
        raise ClientGone() from None
    return total + await _hand(write, parts)


async def _hand(write: Callable[[bytes], Any], parts: list[bytes]) -> int:
    if not parts:
        return 0
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    await anyio.to_thread.run_sync(write, data)
    return len(data)


async def drain(chunks: AsyncIterator[bytes]) -> None:
    """Read (and drop) the rest of a body, so the connection can serve the next request."""
    try:
        async for _ in chunks:
            pass
    except ClientDisconnect:
        return
