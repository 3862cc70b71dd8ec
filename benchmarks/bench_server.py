"""The REST server on loopback, each figure beside the same work on the local store.

Budgets (issue 13):
  * metric ingest through ``POST /runs/{id}/batch``, one client: >= 200,000 values/s;
  * four client processes against PostgreSQL behind ``runyard server --workers 4``:
    >= 400,000 values/s together;
  * the newest 50 runs with a filter among 100,000 runs (``GET /runs``): <= 30 ms per request;
  * a series of 1,000,000 points downsampled to 2,000 buckets (``GET .../metrics/downsample``):
    <= 100 ms per request;
  * ``Run.log_metrics`` against ``http://``: <= 2 us per call in the caller.
The client is runyard's own: ``open_store("http://...")`` (its ``append_batch`` is the batch
endpoint) and ``Run``; the list and downsample requests are plain httpx calls on one kept-alive
connection, as a dashboard makes them. The local figure is the same call on the store the
server serves (``sqlite:``, or the same PostgreSQL). Servers are real ``runyard server``
processes started as the tests start them (``tests/live_servers.py``); PostgreSQL is a
throw-away cluster started as the tests start theirs (``tests/pg_server.py``).
Run: ``.venv/bin/python benchmarks/bench_server.py [ingest|parallel|list|downsample|calls]``
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
os.environ["PATH"] += os.pathsep + "/usr/lib/postgresql/15/bin"

from bench_sqlite_list import make_runs, populate  # noqa: E402
from bench_tracking import QUIET, per_call_median  # noqa: E402

from live_servers import LiveServer, running  # noqa: E402
from runyard.model import Status  # noqa: E402
from runyard.stores import open_store  # noqa: E402
from runyard.stores.base import RunFilter  # noqa: E402
from runyard.stores.streams import MetricColumns  # noqa: E402
from runyard.testing import make_run  # noqa: E402

BATCH = 10_000  # values per request: about what a Run's writer sends per flush at full speed
VALUES = 1_000_000  # one client's ingest
PARALLEL = 4
PARALLEL_VALUES = 500_000  # each of the four clients
SERIES = 1_000_000
BUCKETS = 2_000
LIST_N, LIMIT = 100_000, 50
REPEATS = 51
CALLS = 200_000
BUDGETS = {"ingest": 200_000, "parallel": 400_000, "list": 30.0, "downsample": 100.0,
           "calls": 2.0}


def report(what: str, server: float, local: float, unit: str, budget: float,
           higher_is_better: bool) -> None:
    met = server >= budget if higher_is_better else server <= budget
    sign = ">=" if higher_is_better else "<="
    print(f"  {what}: server {server:,.1f} {unit} (budget {sign} {budget:,.0f}: "
          f"{'met' if met else 'NOT MET'}); local store {local:,.1f} {unit}", flush=True)


def columns(n: int, start: int = 0) -> MetricColumns:
    steps = range(start, start + n)
    return MetricColumns(["loss"] * n, [1.0 / (i + 1) for i in steps], list(steps),
                         [1.7e9 + i for i in steps])


def ingest(url: str, total: int, token: str | None = None) -> tuple[float, float]:
    """When ``append_batch`` (``BATCH`` values each) of ``total`` values into a new run at
    ``url`` began and ended (epoch seconds; the store opened and the run made before)."""
    if token:
        os.environ["RUNYARD_TOKEN"] = token
    store = open_store(url)
    try:
        run = store.create_run(make_run())
        batches = [columns(BATCH, start) for start in range(0, total, BATCH)]
        begin = time.time()
        for i, batch in enumerate(batches):
            store.append_batch(run.id, f"b{i}-{uuid.uuid4().hex}", metrics=batch)
        return begin, time.time()
    finally:
        store.close()


def rate(total: int, span: tuple[float, float]) -> float:
    return total / (span[1] - span[0])


def median_ms(call: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Median milliseconds per call; an HTTP answer must be a success."""
    answer = call()  # warm: connection, caches
    if hasattr(answer, "raise_for_status"):
        answer.raise_for_status()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1000


@contextmanager
def sqlite_server(folder: Path, **kwargs: Any) -> Iterator[LiveServer]:
    with running(f"sqlite://{folder}/store/runyard.db", folder, **kwargs) as server:
        yield server


def bench_ingest(folder: Path) -> None:
    print(f"metric ingest, one client: {VALUES:,} values in batches of {BATCH:,}")
    with sqlite_server(folder / "one") as server:
        remote = rate(VALUES, ingest(server.url, VALUES, server.token))
    local = rate(VALUES, ingest(f"sqlite://{folder}/local/runyard.db", VALUES))
    report("ingest", remote, local, "values/s", BUDGETS["ingest"], True)


def _client(url: str, token: str | None, total: int, go: Any, out: Any) -> None:
    if token:
        os.environ["RUNYARD_TOKEN"] = token
    go.wait()
    out.put(ingest(url, total))


def parallel_rate(url: str, token: str | None) -> float:
    """Values/s of ``PARALLEL`` processes each ingesting ``PARALLEL_VALUES`` into its own run."""
    mp = multiprocessing.get_context("spawn")
    go, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=_client, args=(url, token, PARALLEL_VALUES, go, out))
             for _ in range(PARALLEL)]
    for proc in procs:
        proc.start()
    time.sleep(3.0)  # let them import and connect before the race
    go.set()
    spans = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    # together: from the first client's first batch to the last client's last
    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    return rate(PARALLEL * PARALLEL_VALUES, (first, last))


@contextmanager
def postgres() -> Iterator[str]:
    import psycopg

    from pg_server import PgServer, _make_cluster, _start, _stop

    folder = _make_cluster()
    try:
        pg = PgServer(folder, _start(folder))
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        yield pg.url("bench")
    finally:
        _stop(folder)


def bench_parallel(folder: Path) -> None:
    print(f"metric ingest, {PARALLEL} client processes x {PARALLEL_VALUES:,} values, "
          f"PostgreSQL behind --workers {PARALLEL}")
    with postgres() as url:
        env = {"RUNYARD_BLOBS": str(folder / "blobs")}
        with running(url, folder / "pg", workers=PARALLEL, env=env) as server:
            remote = parallel_rate(server.url, server.token)
        local = parallel_rate(url, None)
    report("parallel ingest", remote, local, "values/s", BUDGETS["parallel"], True)


def bench_list(folder: Path) -> None:
    print(f"the newest {LIMIT} runs with a filter among {LIST_N:,} (median of {REPEATS})")
    url = f"sqlite://{folder}/list/runyard.db"
    store = open_store(url)
    populate(store, make_runs(LIST_N))  # type: ignore[arg-type]
    with running(url, folder / "list") as server, server.client() as api:
        for tag in ("every-10th", "every-1000th"):
            query = {"tag": tag, "limit": LIMIT}
            remote = median_ms(partial(api.get, "/runs", params=query))
            wanted = RunFilter(tags=frozenset({tag}))
            local = median_ms(partial(store.list_runs, wanted, limit=LIMIT))
            report(f"tag {tag}", remote, local, "ms", BUDGETS["list"], False)
        query = {"status": "created", "folder": "/p/3", "limit": LIMIT}
        remote = median_ms(partial(api.get, "/runs", params=query))
        wanted = RunFilter(status=frozenset({Status.CREATED}), folder="/p/3")
        local = median_ms(lambda: store.list_runs(wanted, limit=LIMIT))
        report("status and folder", remote, local, "ms", BUDGETS["list"], False)
    store.close()


def bench_downsample(folder: Path) -> None:
    from runyard.core.downsample import m4

    print(f"{SERIES:,} points to {BUCKETS:,} buckets, M4 (median of {REPEATS})")
    url = f"sqlite://{folder}/series/runyard.db"
    store = open_store(url)
    run = store.create_run(make_run())
    for start in range(0, SERIES, 100_000):
        store.append_batch(run.id, f"k{start}", metrics=columns(100_000, start))

    def local() -> Any:
        series = store.read_metric_series(run.id, "loss")
        return m4(series.steps, series.values, BUCKETS)

    with running(url, folder / "series") as server, server.client() as api:
        query = {"name": "loss", "buckets": BUCKETS, "x": "step"}
        path = f"/runs/{run.id}/metrics/downsample"
        remote = median_ms(partial(api.get, path, params=query))
    report("downsample", remote, median_ms(local), "ms", BUDGETS["downsample"], False)
    store.close()


def calls_us(url: str) -> float:
    from runyard import Run

    values = [1.0 / (i + 1) for i in range(CALLS)]
    with Run(url, **QUIET) as run:  # type: ignore[arg-type]
        run.init(name=f"calls-{uuid.uuid4().hex[:8]}")
        log = run.log_metrics
        return per_call_median(lambda i: log({"loss": values[i]}, step=i), CALLS) * 1e6


def bench_calls(folder: Path) -> None:
    print(f"log_metrics, one value per call ({CALLS:,} calls, median of chunks)")
    with sqlite_server(folder / "calls") as server:
        os.environ["RUNYARD_TOKEN"] = server.token
        remote = calls_us(server.url)
    local = calls_us(f"sqlite://{folder}/calls-local/runyard.db")
    report("log_metrics", remote, local, "us/call", BUDGETS["calls"], False)


CASES = {"ingest": bench_ingest, "parallel": bench_parallel, "list": bench_list,
         "downsample": bench_downsample, "calls": bench_calls}


def main() -> None:
    chosen = sys.argv[1:] or list(CASES)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start "
          "(other work on the machine slows every figure)")
    with tempfile.TemporaryDirectory(prefix="bench-server.") as tmp:
        for name in chosen:
            CASES[name](Path(tmp) / name)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
