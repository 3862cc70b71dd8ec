"""List the 50 newest runs with a given tag among 100,000 runs in a ``sqlite:`` store.

Budget: a median of at most 20 ms per ``list_runs`` call. Baseline, the same work in plain
Python: a list comprehension over 100,000 run dicts picking those with the tag, sorted by id.
The store is populated in one transaction with the store's own row format (creating 100,000
runs one call at a time is measured by ``bench_sqlite_create.py``).
Run: ``.venv/bin/python benchmarks/bench_sqlite_list.py``
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from runyard.model import RunRecord, new_id, run_to_dict
from runyard.stores.base import RunFilter
from runyard.stores.sqlite import SqliteStore
from runyard.stores.sqlschema import INSERT_RUN, INSERT_TAG, run_row

N = 100_000
LIMIT = 50
REPEATS = 101
BUDGET_MS = 20.0
TAGS = {"every-10th": 10, "every-1000th": 1000, "every-run": 1}


def make_runs(n: int) -> list[RunRecord]:
    start_ms = int(time.time() * 1000) - n
    runs = []
    for i in range(n):
        tags = {f"group-{i % 37}"} | {tag for tag, every in TAGS.items() if i % every == 0}
        runs.append(RunRecord(id=new_id(start_ms + i), name=f"run-{i}", folder=f"/p/{i % 10}",
                        tags=frozenset(tags), metadata={"i": i, "lr": 0.001 * (i % 7)},
                        created=(start_ms + i) / 1000))
    return runs


def populate(store: SqliteStore, runs: list[RunRecord]) -> None:
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_RUN, [run_row(run, store.dialect) for run in runs])
        conn.executemany(INSERT_TAG, [(tag, run.id) for run in runs for tag in run.tags])
        conn.execute("COMMIT")
    finally:
        conn.close()


def median_ms(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def baseline(dicts: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    chosen = [d for d in dicts if tag in d["tags"]]
    return sorted(chosen, key=lambda d: d["id"], reverse=True)[:LIMIT]


def main() -> None:
    runs = make_runs(N)
    dicts = [run_to_dict(run) for run in runs]
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "runyard.db")
        started = time.perf_counter()
        populate(store, runs)
        print(f"populated {N:,} runs in {time.perf_counter() - started:.1f} s")
        print(f"list the {LIMIT} newest runs with a tag among {N:,} (median of {REPEATS})")
        for tag in TAGS:
            wanted = RunFilter(tags=frozenset({tag}))
            found = store.list_runs(wanted, limit=LIMIT)
            assert [r.id for r in found] == [d["id"] for d in baseline(dicts, tag)]
            store_ms = median_ms(partial(store.list_runs, wanted, limit=LIMIT))
            plain_ms = median_ms(partial(baseline, dicts, tag))
            verdict = "meets" if store_ms <= BUDGET_MS else "MISSES"
            print(f"  tag {tag:<13} sqlite list_runs {store_ms:7.2f} ms   "
                  f"baseline list comprehension + sort {plain_ms:7.2f} ms   "
                  f"budget <= {BUDGET_MS:.0f} ms: {verdict}")
        store.close()


if __name__ == "__main__":
    main()
