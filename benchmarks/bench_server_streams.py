"""The metric routes on loopback, each figure beside the same work on the local store.

Budgets (issue 13):
  * metric ingest through ``POST /runs/{id}/batch``, one client, batches of 10,000 values:
    >= 200,000 values/s (the client encodes each batch as the http store does: codec columns,
    orjson; the figure includes that);
  * a series of 1,000,000 points downsampled to 2,000 buckets
    (``GET /runs/{id}/metrics/downsample``): <= 100 ms per request.
The server is a real ``runyard server`` process over SQLite on 127.0.0.1 (started as the tests
start one, ``tests/server_helpers.py``); the client is plain httpx in this process on one
kept-alive connection. The local figure is the same work on the store the server serves:
``append_batch`` with the same columns, and ``read_metric_series`` + ``m4``.
Run: ``.venv/bin/python benchmarks/bench_server_streams.py [ingest|downsample]``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

from runyard.model import RunRecord, Status, codec, new_id  # noqa: E402
from runyard.stores import open_store  # noqa: E402
from runyard.stores.streams import MetricColumns  # noqa: E402
from server_helpers import server_process, token  # noqa: E402

BATCH = 10_000
VALUES = 1_000_000
SERIES = 1_000_000
BUCKETS = 2_000
REPEATS = 21
BUDGETS = {"ingest": 200_000.0, "downsample": 100.0}


def report(what: str, server: float, local: float, unit: str, budget: float,
           higher_is_better: bool) -> None:
    met = server >= budget if higher_is_better else server <= budget
    sign = ">=" if higher_is_better else "<="
    print(f"  {what}: server {server:,.1f} {unit} (budget {sign} {budget:,.0f}: "
          f"{'met' if met else 'NOT MET'}); local store {local:,.1f} {unit}", flush=True)


def columns(n: int, start: int = 0) -> MetricColumns:
    steps = range(start, start + n)
    return MetricColumns(["loss"] * n, [1.0 / (i + 1) for i in steps], list(steps),
                         [1.7e9 + i * 0.01 for i in steps])


def new_run(store: Any) -> str:
    run = store.create_run(RunRecord(id=new_id(), name=f"bench-{new_id()[-8:].lower()}"))
    store.update_status(run.id, Status.RUNNING)
    return str(run.id)


def ingest_server(client: Any, run_id: str, batches: list[MetricColumns]) -> float:
    """Values/s through POST /batch, each batch encoded in the loop as a client would."""
    import orjson

    started = time.perf_counter()
    for at, batch in enumerate(batches):
        body = orjson.dumps({"metrics": codec.columns_to_dict(*batch)})
        answer = client.post(f"/runs/{run_id}/batch", content=body,
                             headers={"Idempotency-Key": f"b-{at}",
                                      "Content-Type": "application/json"})
        answer.raise_for_status()
    return sum(len(b.values) for b in batches) / (time.perf_counter() - started)


def ingest_local(store: Any, run_id: str, batches: list[MetricColumns]) -> float:
    started = time.perf_counter()
    for at, batch in enumerate(batches):
        store.append_batch(run_id, f"b-{at}", metrics=batch)
    return sum(len(b.values) for b in batches) / (time.perf_counter() - started)


def bench_ingest(store: Any, client: Any) -> None:
    batches = [columns(BATCH, start) for start in range(0, VALUES, BATCH)]
    ingest_server(client, new_run(store), batches[:5])  # warm up both
    ingest_local(store, new_run(store), batches[:5])
    server = ingest_server(client, new_run(store), batches)
    local = ingest_local(store, new_run(store), batches)
    report(f"ingest, {VALUES:,} values in batches of {BATCH:,}", server, local, "values/s",
           BUDGETS["ingest"], True)


def bench_downsample(store: Any, client: Any) -> None:
    from runyard.core.downsample import m4

    run_id = new_run(store)
    for start in range(0, SERIES, 100_000):
        store.append_metric_columns(run_id, *columns(100_000, start))
    params = {"name": "loss", "buckets": BUCKETS}

    def remote() -> None:
        answer = client.get(f"/runs/{run_id}/metrics/downsample", params=params)
        answer.raise_for_status()
        assert answer.json()["count"] == SERIES

    def local() -> None:
        import numpy as np

        series = store.read_metric_series(run_id, "loss")
        m4(np.frombuffer(series.steps, dtype=np.int64), np.frombuffer(series.values), BUCKETS)

    server_ms, local_ms = medians_ms(remote, local)
    report(f"downsample, {SERIES:,} points to {BUCKETS:,} buckets", server_ms, local_ms,
           "ms/request", BUDGETS["downsample"], False)


def medians_ms(*calls: Any) -> list[float]:
    """Each call's median time in ms, the calls taken in turn (so a busy moment of the machine
    falls on all of them alike), after one warm-up call each."""
    times: list[list[float]] = [[] for _ in calls]
    for round_ in range(REPEATS + 1):
        for call, kept in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            if round_:
                kept.append((time.perf_counter() - started) * 1e3)
    return [statistics.median(kept) for kept in times]


def main(which: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/runyard.db"
        store = open_store(url)
        text = token(store)
        with server_process(url, "--no-access-log") as server, server.client(text) as client:
            print(f"server {server.base} over {url}; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} CPUs")
            for name in which:
                {"ingest": bench_ingest, "downsample": bench_downsample}[name](store, client)
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:] or ["ingest", "downsample"])
