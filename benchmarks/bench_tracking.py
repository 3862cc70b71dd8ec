"""The tracking client: cost per ``log_metrics`` call, a million values end to end, many runs.

Budgets:
  * ``log_metrics`` with one value: median <= 2 us per call in the caller;
  * 1,000,000 values logged and flushed to ``sqlite:`` in <= 3 s end to end (>= 330,000
    values/s), with peak memory growth <= 200 MB;
  * creating, using and closing 1,000 runs in a loop: >= 200 runs/s on ``sqlite:``;
  * the bare ``Run()`` loop of issue 16 (create with 3 tags and 5 metadata keys, close), with
    the run's code and environment recorded as always: >= 1,000 runs/s on ``sqlite:``.
Each figure is printed beside two baselines doing the same work in plain Python, measured in
the same run: appending the values to a list, and writing them as JSON lines to a file. The
CPU seconds the process used are shown too: on a machine busy with other work they tell what
the wall-clock time would be on an idle one.
The end-to-end scenarios run in a fresh child process each, so peak memory is theirs alone.
Run: ``.venv/bin/python benchmarks/bench_tracking.py`` (``... runs``: the loops of runs alone)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runyard import Run

CALLS = 200_000
CHUNK = 100  # calls timed together; the median is over chunks
VALUES = 1_000_000
RUNS = 1_000
QUIET = {"heartbeat_interval": None, "resources_interval": None}


def per_call_median(call: Any, n: int) -> float:
    """Median seconds per call, timing ``CHUNK`` calls at a time."""
    clock = time.perf_counter
    samples = []
    for start in range(0, n, CHUNK):
        begin = clock()
        for i in range(start, start + CHUNK):
            call(i)
        samples.append((clock() - begin) / CHUNK)
    return statistics.median(samples)


def bench_call(folder: Path) -> dict[str, float]:
    values = [1.0 / (i + 1) for i in range(CALLS)]
    listed: list[Any] = []
    with open(folder / "calls.jsonl", "w", encoding="utf-8") as out:
        baseline_list = per_call_median(lambda i: listed.append((values[i], i)), CALLS)
        baseline_json = per_call_median(
            lambda i: out.write(json.dumps({"loss": values[i], "step": i}) + "\n"), CALLS)
    with Run(f"sqlite://{folder}/calls.db", **QUIET) as run:
        run.init(name="per-call")
        log = run.log_metrics
        measured = per_call_median(lambda i: log({"loss": values[i]}, step=i), CALLS)
    return {"log_metrics": measured, "list": baseline_list, "jsonl": baseline_json}


# -- one million values, in a child process ----------------------------------------------------
def scenario(kind: str, width: int, folder: str) -> dict[str, float]:
    """Log ``VALUES`` values as ``VALUES // width`` calls of ``width`` values each."""
    names = [f"m{i}" for i in range(width)]
    calls = VALUES // width
    rss_before = _rss_bytes()
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "runyard":
        with Run(f"sqlite://{folder}/million-{width}.db", **QUIET) as run:
            run.init()
            for step in range(calls):
                run.log_metrics({name: step * 0.5 for name in names}, step=step)
    elif kind == "list":
        kept: list[Any] = []
        for step in range(calls):
            kept.append(({name: step * 0.5 for name in names}, step, time.time()))
    else:
        with open(Path(folder) / f"million-{width}.jsonl", "w", encoding="utf-8") as out:
            for step in range(calls):
                row = {name: step * 0.5 for name in names}
                out.write(json.dumps({"values": row, "step": step, "time": time.time()}) + "\n")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    growth = max(0, _rss_bytes("VmHWM") - rss_before) / 1e6
    result = {"seconds": elapsed, "cpu_seconds": cpu, "growth_mb": growth}
    if kind == "runyard":  # and reading them all back, in append order
        start = time.perf_counter()
        read = len(run.store.read_metrics(run.id))
        result["read_seconds"] = time.perf_counter() - start
        assert read == calls * width, read
    return result


def _rss_bytes(field: str = "VmRSS") -> int:
    """Resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), from /proc."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def in_child(*args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


# -- a thousand runs ---------------------------------------------------------------------------
def bench_runs(folder: Path) -> dict[str, float]:
    url = f"sqlite://{folder}/runs.db"
    Run(url, **QUIET).init(name="warm-up").close()  # open the store and read git once
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(RUNS):
        with Run(url, **QUIET) as run:
            run.init(metadata={"index": i}, tags=["loop"])
            for step in range(10):
                run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
            run.log_event("done")
    measured, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    kept = [{"index": i, "tags": ["loop"], "metrics": [1.0 / (s + 1) for s in range(10)],
             "events": ["done"]} for i in range(RUNS)]
    listed = time.perf_counter() - start
    start = time.perf_counter()
    with open(folder / "runs.jsonl", "w", encoding="utf-8") as out:
        for row in kept:
            out.write(json.dumps(row) + "\n")
    jsonl = time.perf_counter() - start
    return {"runyard": measured, "cpu": cpu, "list": listed, "jsonl": jsonl}


def bench_bare_runs(folder: Path) -> dict[str, float]:
    """The issue-16 loop: create (3 tags, 5 metadata keys) and close, nothing logged."""
    url = f"sqlite://{folder}/bare.db"
    Run(url, **QUIET).init(name="warm-up").close()
    tags = ["scan", "baseline", "gpu"]
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(RUNS):
        with Run(url, **QUIET) as run:
            run.init(tags=tags, metadata={"index": i, "lr": 0.1, "batch": 32, "opt": "adam",
                                          "seed": 7})
    measured, cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    with open(folder / "bare.jsonl", "w", encoding="utf-8") as out:
        for i in range(RUNS):
            out.write(json.dumps({"index": i, "tags": tags, "metadata": {
                "index": i, "lr": 0.1, "batch": 32, "opt": "adam", "seed": 7}}) + "\n")
    return {"runyard": measured, "cpu": cpu, "jsonl": time.perf_counter() - start}


def report_call(figures: dict[str, float]) -> None:
    print(f"log_metrics with one value, median per call over {CALLS:,} calls")
    print(f"  runyard Run.log_metrics      {figures['log_metrics'] * 1e6:8.3f} us")
    print(f"  baseline: list append        {figures['list'] * 1e6:8.3f} us")
    print(f"  baseline: JSON lines write   {figures['jsonl'] * 1e6:8.3f} us")
    verdict = "meets" if figures["log_metrics"] <= 2e-6 else "MISSES"
    print(f"  budget <= 2 us: {verdict}")


def report_million(width: int, folder: str) -> None:
    print(f"{VALUES:,} values as {VALUES // width:,} calls of {width}, end to end")
    ours = in_child("scenario", "runyard", str(width), folder)
    for label, kind in (("runyard Run -> sqlite:", "runyard"), ("baseline: list append", "list"),
                        ("baseline: JSON lines file", "jsonl")):
        got = ours if kind == "runyard" else in_child("scenario", kind, str(width), folder)
        rate = VALUES / got["seconds"]
        print(f"  {label:<27}{got['seconds']:7.2f} s {rate:>12,.0f} values/s "
              f"  (CPU {got['cpu_seconds']:5.2f} s)  peak growth {got['growth_mb']:6.1f} MB")
    print(f"  reading them back (read_metrics)  {ours['read_seconds']:7.2f} s")
    verdict = "meets" if ours["seconds"] <= 3 and ours["growth_mb"] <= 200 else "MISSES"
    print(f"  budget <= 3 s and <= 200 MB: {verdict}")


def report_runs(figures: dict[str, float]) -> None:
    print(f"create, use (10 metrics, 1 event) and close {RUNS:,} runs")
    for label, key in (("runyard Run on sqlite:", "runyard"), ("baseline: dicts in a list", "list"),
                       ("baseline: JSON lines file", "jsonl")):
        print(f"  {label:<27}{RUNS / figures[key]:>12,.0f} runs/s ({figures[key]:.3f} s)"
              + (f"  (CPU {figures['cpu']:.3f} s)" if key == "runyard" else ""))
    verdict = "meets" if RUNS / figures["runyard"] >= 200 else "MISSES"
    print(f"  budget >= 200 runs/s: {verdict}")


def report_bare_runs(figures: dict[str, float]) -> None:
    print(f"create (3 tags, 5 metadata keys) and close {RUNS:,} runs")
    for label, key in (("runyard Run on sqlite:", "runyard"),
                       ("baseline: JSON lines file", "jsonl")):
        print(f"  {label:<27}{RUNS / figures[key]:>12,.0f} runs/s ({figures[key]:.3f} s)"
              + (f"  (CPU {figures['cpu']:.3f} s)" if key == "runyard" else ""))
    verdict = "meets" if RUNS / figures["runyard"] >= 1000 else "MISSES"
    print(f"  budget >= 1,000 runs/s: {verdict}")


def main(runs_only: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not runs_only:
            report_call(bench_call(folder))
            for width in (1, 10):
                report_million(width, tmp)
        report_runs(bench_runs(folder))
        report_bare_runs(bench_bare_runs(folder))


if __name__ == "__main__":
    if sys.argv[1:2] == ["scenario"]:
        print(json.dumps(scenario(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
    else:
        main(runs_only=sys.argv[1:2] == ["runs"])  # ``runs``: the two loops of runs alone
