"""Create 10,000 runs (3 tags and 5 metadata keys each) in a ``sqlite:`` store.

Budget: at least 2,000 runs/s. Baselines, the same work in plain Python: building the 10,000
run dicts into a list, and writing them as JSON lines to a file.
Run: ``.venv/bin/python benchmarks/bench_sqlite_create.py``
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from runyard.model import RunRecord, new_id, run_to_dict
from runyard.stores.sqlite import SqliteStore

N = 10_000
BUDGET_RUNS_PER_S = 2_000


def make_runs(n: int) -> list[RunRecord]:
    started = time.time()
    return [
        RunRecord(
            id=new_id(),
            name=f"run-{i}",
            folder=f"/project/{i % 10}",
            tags=frozenset({f"tag-{i % 7}", f"team-{i % 3}", "bench"}),
            metadata={f"key{k}": i * k for k in range(5)},
            created=started + i / 1000,
        )
        for i in range(n)
    ]


def rate(seconds: float) -> str:
    return f"{N / seconds:>12,.0f} runs/s  ({seconds * 1000:8.1f} ms)"


def baseline_list(runs: list[RunRecord]) -> float:
    start = time.perf_counter()
    out: list[dict[str, Any]] = []
    for run in runs:
        out.append(run_to_dict(run))
    return time.perf_counter() - start


def baseline_jsonl(runs: list[RunRecord], folder: Path) -> float:
    start = time.perf_counter()
    with open(folder / "runs.jsonl", "w", encoding="utf-8") as out:
        for run in runs:
            out.write(json.dumps(run_to_dict(run)) + "\n")
    return time.perf_counter() - start


def measured(runs: list[RunRecord], folder: Path) -> float:
    store = SqliteStore(folder / "store" / "runyard.db")
    try:
        start = time.perf_counter()
        for run in runs:
            store.create_run(run)
        elapsed = time.perf_counter() - start
        assert store.count_runs() == N
    finally:
        store.close()
    return elapsed


def main() -> None:
    runs = make_runs(N)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sqlite_s = measured(runs, folder)
        list_s = baseline_list(runs)
        jsonl_s = baseline_jsonl(runs, folder)
    print(f"create {N:,} runs, 3 tags and 5 metadata keys each")
    print(f"  sqlite store create_run     {rate(sqlite_s)}")
    print(f"  baseline: dicts into a list {rate(list_s)}")
    print(f"  baseline: JSON lines file   {rate(jsonl_s)}")
    verdict = "meets" if N / sqlite_s >= BUDGET_RUNS_PER_S else "MISSES"
    print(f"  budget >= {BUDGET_RUNS_PER_S:,} runs/s: {verdict}")


if __name__ == "__main__":
    main()
