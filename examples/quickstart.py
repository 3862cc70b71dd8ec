"""The quickstart job: a small study recorded in the default store, then listed and shown.

1. a three-point parameter scan, each point a tracked run (``Run``) with metrics, an event, an
   output file, tags and metadata;
2. a workflow that fits the scan's results, run ``in_process``: one step per task run, with
   attempts, captured output and inputs/outputs by hash;
3. ``runyard run list`` and ``runyard run show`` of what was recorded.

Run it from any folder: the runs land in the nearest ``.runyard/`` (created here if none).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from pathlib import Path

from runyard import Run, open_store, task, workflow


def scan_point(rate: float) -> str:
    with Run() as run:
        run.init(folder="/quickstart/scan", tags=["quickstart", "scan"],
                 metadata={"rate": rate, "model": "decay", "points": 50},
                 description=f"exponential decay at rate {rate}")
        for t in range(50):
            amplitude = math.exp(-rate * t / 10)
            run.log_metrics({"amplitude": amplitude, "energy": amplitude**2}, step=t)
        run.log_event(f"amplitude fell below 1% after {math.ceil(46.05 / rate)} steps")
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.csv"
            report.write_text(f"rate,final\n{rate},{math.exp(-rate * 4.9):.6f}\n")
            run.save_file(report, category="output")
        run.update_metadata({"final": math.exp(-rate * 4.9)})
        return run.name


@task
def half_life(rate: float) -> float:
    print(f"half-life at rate {rate}")
    return 10 * math.log(2) / rate


@task(max_attempts=2)
def summarise(values: list[float]) -> dict[str, float]:
    return {"shortest": min(values), "longest": max(values)}


@workflow
def fit(rates: list[float]) -> dict[str, float]:
    return summarise([half_life(r) for r in rates])


def main() -> None:
    store = open_store()
    rates = [0.5, 1.0, 2.0]
    names = [scan_point(rate) for rate in rates]
    flow = fit(rates).run("in_process")
    print(f"recorded {len(names)} tracked runs and workflow run {flow.run_id} in {store.url}; "
          f"fit: {flow.get_results(wait=True)}", file=sys.stderr)
    cli = [sys.executable, "-m", "runyard", "--store", store.url]
    subprocess.run([*cli, "run", "list", "--folder", "/", "--limit", "5"], check=True)
    subprocess.run([*cli, "run", "show", names[-1]], check=True)
    subprocess.run([*cli, "run", "show", flow.run_id], check=True)


if __name__ == "__main__":
    main()
