"""The http store's client side: ``log_metrics`` caller cost, and ingest through the client.

Budgets (issue 13):
  * ``Run.log_metrics`` against ``http://``: median <= 2 us per call in the caller (it only
    queues; the run's writer thread calls the store), beside the same loop on ``sqlite:``;
  * metric ingest through the client (``HttpStore.append_metric_columns``: one ``/batch``
    request per 50,000 values, as the tracking writer sends them) and end to end through
    ``Run`` (log, then close: every value on the server), in values/s, beside the same work on
    the server's own ``sqlite:`` store.
The server is a real uvicorn process (one worker) on 127.0.0.1 over SQLite, started here with
the app factory ``runyard server`` uses; the client is this process.
Run: ``.venv/bin/python benchmarks/bench_http_client.py``
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_tracking import QUIET, per_call_median  # noqa: E402

from runyard import Run  # noqa: E402

CALLS = 200_000
VALUES = 1_000_000
BATCH = 50_000  # the tracking writer's batch (runyard.tracking.flusher.BATCH)


@contextmanager
def server(folder: Path) -> Iterator[tuple[str, str]]:
    """A uvicorn process serving ``sqlite:///<folder>/server.db``: (its URL, a token)."""
    from runyard.model.tokens import TokenRecord
    from runyard.stores import open_store

    store_url = f"sqlite://{folder}/server.db"
    token = "ry_" + secrets.token_urlsafe(32)
    store = open_store(store_url)
    store.add_token(TokenRecord("bench", hashlib.sha256(token.encode()).hexdigest(), False,
                                time.time()))
    store.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RUNYARD_SERVER_STORE": store_url, "RUNYARD_SERVER_ACCESS_LOG": "0",
           "RUNYARD_BLOBS": str(folder / "blobs")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "runyard.server.app:from_env",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_ready(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not start")


def caller_cost(url: str) -> float:
    """Median seconds per ``log_metrics`` call in the caller, on the store at ``url``."""
    values = [1.0 / (i + 1) for i in range(CALLS)]
    with Run(url, **QUIET) as run:
        run.init()
        log = run.log_metrics
        return per_call_median(lambda i: log({"loss": values[i]}, step=i), CALLS)


def ingest_store(url: str) -> float:
    """Values/s appended through ``open_store(url).append_metric_columns`` in batches."""
    from runyard.stores import open_store
    from runyard.testing.factories import make_run

    store = open_store(url)
    run = store.create_run(make_run())
    names, now = ["loss"] * BATCH, time.time()
    batches = [([float(i + j) for j in range(BATCH)], list(range(i, i + BATCH)))
               for i in range(0, VALUES, BATCH)]
    start = time.perf_counter()
    for values, steps in batches:
        store.append_metric_columns(run.id, names, values, steps, [now] * BATCH)
    took = time.perf_counter() - start
    assert len(store.read_metric_series(run.id, "loss").values) == VALUES
    return VALUES / took


def ingest_run(url: str) -> float:
    """Values/s through ``Run``: logged one per call, the run closed (all written)."""
    start = time.perf_counter()
    with Run(url, **QUIET) as run:
        run.init()
        log = run.log_metrics
        for step in range(VALUES):
            log({"loss": step * 0.5}, step=step)
    return VALUES / (time.perf_counter() - start)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["RUNYARD_SPOOL"] = str(folder / "spool")
        os.environ["RUNYARD_BLOBS"] = str(folder / "client-blobs")
        local = f"sqlite://{folder}/local.db"
        with server(folder) as (url, token):
            os.environ["RUNYARD_TOKEN"] = token
            rows = [
                ("log_metrics, us per call in the caller (<= 2)",
                 caller_cost(url) * 1e6, caller_cost(local) * 1e6, "{:.2f}"),
                ("append_metric_columns, values/s",
                 ingest_store(url), ingest_store(local), "{:,.0f}"),
                ("Run: 1,000,000 values logged and closed, values/s",
                 ingest_run(url), ingest_run(local), "{:,.0f}"),
            ]
    print(f"{'':52} {'http://':>14} {'sqlite: (local)':>16}")
    for label, remote, there, fmt in rows:
        print(f"{label:52} {fmt.format(remote):>14} {fmt.format(there):>16}")


if __name__ == "__main__":
    main()
