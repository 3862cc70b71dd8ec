"""Nothing is lost or doubled while the server dies, restarts or shuts down.

A tracked ``Run`` on ``http://`` logs 1,000,000 values while its ``runyard server`` (SQLite) is
killed with SIGKILL and started again on the same port, twice: the client spools what it cannot
send and resends it, the server de-duplicates the resent batches by their idempotency keys,
and the store ends with exactly the million values, in order, none doubled. Then a graceful
stop: SIGTERM arrives while a batch is being received, and the server finishes that batch,
answers it and exits. The stores are read directly, not through the server under test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_servers import LiveServer, launch
from runyard import Run
from runyard.model import run_to_dict
from runyard.stores import open_store
from runyard.testing import make_run

VALUES = 1_000_000
QUIET = {"heartbeat_interval": None, "resources_interval": None, "capture_code": False}


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))  # the client's outbox
    started = launch(f"sqlite://{tmp_path}/store/runyard.db", tmp_path / "server")
    monkeypatch.setenv("RUNYARD_TOKEN", started.token)
    yield started
    started.stop()


def _batches_served(server: LiveServer) -> int:
    """How many ``/batch`` requests the server has answered, by its access log."""
    return server.log.read_text(errors="replace").count('/batch", "status": 200')


def _restart(server: LiveServer, served: int) -> int:
    """Once the server has answered a batch past ``served`` (so the client is sending to it:
    the next batch is likely in flight), kill it and start it again on its port, without
    waiting for it; the count of batches answered by then."""
    server.wait_ready()
    deadline = time.monotonic() + 60
    while _batches_served(server) <= served and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    served = _batches_served(server)
    server.start(wait=False)
    return served


@pytest.mark.slow
def test_a_million_values_survive_two_kills_of_the_server(server: LiveServer) -> None:
    kills = {VALUES // 3, 2 * VALUES // 3}
    run = Run(server.url, **QUIET)  # type: ignore[arg-type]
    run.init(name="outage")
    log = run.log_metrics
    served = 0
    for i in range(VALUES):
        if i in kills:
            served = _restart(server, served)
        log({"x": float(i)}, step=i)
    server.wait_ready()
    run.close()
    assert server.proc is not None and server.proc.poll() is None
    assert _spooled(server) == []  # everything was resent; nothing refused
    store = open_store(server.store_url)
    try:
        series = store.read_metric_series(run.id, "x")
    finally:
        store.close()
    assert len(series.values) == VALUES
    assert series.values.tobytes() == _floats(VALUES)
    assert list(series.steps) == list(range(VALUES))


def _spooled(server: LiveServer) -> list[str]:
    """The batches still in the client's spool (``runyard.stores.spool``), refused ones too."""
    folder = Path(os.environ["RUNYARD_SPOOL"])
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*.batch"))


def _floats(n: int) -> bytes:
    import array

    return array.array("d", map(float, range(n))).tobytes()


def _request_head(server: LiveServer, run_id: str, length: int) -> bytes:
    return (f"POST /api/v1/runs/{run_id}/batch HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: graceful-1\r\nExpect: 100-continue\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _read_until(sock: socket.socket, marker: bytes, start: bytes = b"") -> bytes:
    data = start
    while marker not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


def test_sigterm_lets_the_batch_in_flight_finish(server: LiveServer) -> None:
    with server.client() as api:
        run_id = api.post("/runs", json=run_to_dict(make_run())).json()["id"]
    n = 50_000
    body = json.dumps({"metrics": {"names": ["x"] * n, "values": [float(i) for i in range(n)],
                                   "steps": list(range(n)), "times": [1.0] * n},
                       "events": [], "logs": []}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(_request_head(server, run_id, len(body)))
        interim = _read_until(sock, b"\r\n\r\n")  # the app is reading the body: in flight
        assert interim.startswith(b"HTTP/1.1 100"), interim[:200]
        server.signal(signal.SIGTERM)
        sock.sendall(body)
        answer = _read_until(sock, b"}", interim.split(b"\r\n\r\n", 1)[1])
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"applied": True}
    assert server.proc is not None and server.proc.wait(timeout=30) == 0
    store = open_store(server.store_url)
    try:
        assert len(store.read_metric_series(run_id, "x").values) == n
    finally:
        store.close()
