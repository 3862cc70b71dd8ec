"""The quickstart job: a small parameter scan recorded in the default store, then shown.

Run it from any folder: the runs land in the nearest ``.runyard/`` (created here if none).
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runyard import Status, create_run, open_store
from runyard.blobs import BlobStore
from runyard.core.catalog import save_file
from runyard.model import Attempt, Metric, Step
from runyard.stores import blob_root


def simulate(store, blobs, rate: float) -> str:  # type: ignore[no-untyped-def]
    run = create_run(
        store,
        folder="/quickstart",
        tags=["quickstart", "scan"],
        metadata={"rate": rate, "model": "decay", "points": 50, "unit": "s", "seed": 7},
        parameters={"rate": rate},
        description=f"exponential decay at rate {rate}",
        status=Status.RUNNING,
    )
    for name in ("prepare", "simulate", "report"):
        start = time.time()
        store.upsert_step(run.id, Step(name, created=start))
        store.upsert_attempt(run.id, name, Attempt(1, Status.RUNNING, start))
        if name == "simulate":
            values = [Metric("amplitude", math.exp(-rate * t / 10), t, time.time())
                      for t in range(50)]
            store.append_metrics(run.id, values)
        store.upsert_attempt(run.id, name, Attempt(1, Status.SUCCEEDED, start, time.time()))
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.csv"
        report.write_text("rate,final\n" + f"{rate},{math.exp(-rate * 4.9):.6f}\n")
        save_file(store, blobs, run.id, report, category="output")
    store.update_status(run.id, Status.SUCCEEDED, "finished the scan point")
    return run.name


def main() -> None:
    store = open_store()
    blobs = BlobStore(blob_root(store.url))
    names = [simulate(store, blobs, rate) for rate in (0.5, 1.0, 2.0)]
    print(f"recorded {len(names)} runs in {store.url}", file=sys.stderr)
    cli = [sys.executable, "-m", "runyard", "--store", store.url]
    subprocess.run([*cli, "run", "list", "--tag", "quickstart", "--limit", "5"], check=True)
    subprocess.run([*cli, "run", "show", names[-1]], check=True)


if __name__ == "__main__":
    main()
