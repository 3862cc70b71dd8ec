"""Read one metric's 1,000,000 values from a ``sqlite:`` store as arrays (``read_metric_series``).

What the server's downsampling (M4 of a million points, at most 100 ms per request in all) and
plots read. Budget: a median far under 100 ms for the whole series (here: at most 30 ms).
Beside it, in the same run: ``read_metrics`` of the same name (a ``Metric`` per value), the
series cut to half its time range and to a step range, and the plain-Python baseline of the
same result: the three arrays built from three lists already in memory.
The store holds the series in batches of 10,000 values, with a second name interleaved.
Run: ``.venv/bin/python benchmarks/bench_series.py``
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.stores.sqlite import SqliteStore
from runyard.testing import make_run

N = 1_000_000
BATCH = 10_000
REPEATS = 21
BUDGET_MS = 30.0


def populate(store: SqliteStore) -> str:
    run = store.create_run(make_run())
    for at in range(0, N, BATCH):
        steps = range(at, at + BATCH)
        names = ["loss", "lr"] * BATCH
        values = [v for s in steps for v in (1.0 / (s + 1), 0.001)]
        store.append_metric_columns(run.id, names, values, [s for s in steps for _ in "ab"],
                                    [1.7e9 + s / 10 for s in steps for _ in "ab"])
    return run.id


def median_ms(call: Callable[[], Any]) -> tuple[float, float]:
    """The median and the best time of ``REPEATS`` calls, in ms."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "runyard.db")
        run_id = populate(store)
        series = store.read_metric_series(run_id, "loss")
        assert len(series.values) == N
        lists = series.values.tolist(), series.steps.tolist(), series.times.tolist()
        middle = 1.7e9 + N / 40, 1.7e9 + 3 * N / 40
        figures = {
            "read_metric_series": median_ms(lambda: store.read_metric_series(run_id, "loss")),
            "  within half its time range": median_ms(
                lambda: store.read_metric_series(run_id, "loss", times=middle)),
            "  within steps 250,000-749,999": median_ms(
                lambda: store.read_metric_series(run_id, "loss", steps=(250_000, 749_999))),
            "read_metrics (a Metric per value)": median_ms(
                lambda: store.read_metrics(run_id, "loss")),
            "baseline: arrays from lists in memory": median_ms(
                lambda: (array("d", lists[0]), array("q", lists[1]), array("d", lists[2]))),
        }
        store.close()
    load = os.getloadavg()[0]
    print(f"one metric of {N:,} values in sqlite, median (best) of {REPEATS} "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs):")
    for label, (ms, best) in figures.items():
        print(f"  {label:<40} {ms:8.1f} ms ({best:.1f})")
    verdict = "met" if figures["read_metric_series"][0] <= BUDGET_MS else "NOT met"
    print(f"budget {BUDGET_MS:.0f} ms for the whole series: {verdict}")


if __name__ == "__main__":
    main()
