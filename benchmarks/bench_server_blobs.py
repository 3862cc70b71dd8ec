"""Blobs and buffer data through the REST server on loopback, beside the same work locally.

For a blob of ``SIZE`` random bytes: ``PUT /blobs/{digest}`` (streamed from the client in 1 MB
pieces, hashed and checked by the server, synced) and ``GET /blobs/{digest}``, against
``BlobStore.put_stream(expect=...)`` and a plain read of the blob file on the server's own blob
store; then ``PUT``/``GET /buffers/{id}/data`` against ``write_buffer``/``read_buffer`` of the
same store through a pipe. Medians of ``ROUNDS`` interleaved rounds, in MB/s. The server is a
real ``runyard server`` process started as the tests start it (``tests/live_servers.py``).
Run: ``.venv/bin/python benchmarks/bench_server_blobs.py``
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

from live_servers import running  # noqa: E402
from runyard.core.context import open_context  # noqa: E402

SIZE = 256 << 20
ROUNDS = 3
PIECE = 1 << 20


def pieces(data: bytes) -> Iterator[bytes]:
    for at in range(0, len(data), PIECE):
        yield data[at:at + PIECE]


def rate(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return SIZE / (time.perf_counter() - start) / 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            running(f"sqlite://{tmp}/store/runyard.db", Path(tmp)) as server, \
            server.client(timeout=600) as client:
        ctx = open_context(server.store_url)
        figures: dict[str, list[float]] = {}
        for _ in range(ROUNDS):
            for name, value in one_round(ctx, client).items():
                figures.setdefault(name, []).append(value)
        for name, values in figures.items():
            print(f"{name:<34} {statistics.median(values):8.0f} MB/s")


def one_round(ctx: object, client: object) -> dict[str, float]:
    from runyard.commands.buffers import read_buffer, write_buffer

    blobs, registry = ctx.blobs, ctx.registry  # type: ignore[attr-defined]
    http = client  # an httpx.Client
    out: dict[str, float] = {}
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    out["blob in, local put_stream"] = rate(
        lambda: blobs.put_stream(io.BytesIO(data), expect=digest))
    out["blob out, local read"] = rate(lambda: blobs.read_bytes(digest))
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    out["blob in, PUT /blobs"] = rate(
        lambda: http.put(f"/blobs/{digest}", content=pieces(data)))  # type: ignore[attr-defined]
    out["blob out, GET /blobs"] = rate(lambda: _read(http, f"/blobs/{digest}"))
    local = registry.create_buffer().id
    out["buffer in, local write_buffer"] = rate(lambda: _pipe_in(registry, blobs, local, data,
                                                                 write_buffer))
    out["buffer out, local read_buffer"] = rate(lambda: _pipe_out(registry, blobs, local,
                                                                  read_buffer))
    remote = http.post("/buffers", json={}).json()["id"]  # type: ignore[attr-defined]
    out["buffer in, PUT /buffers/data"] = rate(lambda: http.put(  # type: ignore[attr-defined]
        f"/buffers/{remote}/data", content=pieces(data)))
    out["buffer out, GET /buffers/data"] = rate(lambda: _read(http, f"/buffers/{remote}/data"))
    return out


def _read(http: object, path: str) -> int:
    got = 0
    with http.stream("GET", path) as answer:  # type: ignore[attr-defined]
        for piece in answer.iter_raw():
            got += len(piece)
    assert got == SIZE, (path, got)
    return got


def _pipe_in(registry: object, blobs: object, buffer_id: str, data: bytes,
             write: Callable[..., object]) -> None:
    import threading

    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        write(registry, blobs, buffer_id, read_end)
    finally:
        feeder.join()
        os.close(read_end)


def _pipe_out(registry: object, blobs: object, buffer_id: str,
              read: Callable[..., object]) -> None:
    with open(os.devnull, "wb") as sink:
        read(registry, blobs, buffer_id, sink.fileno(), lambda buffer: None)


if __name__ == "__main__":
    main()
