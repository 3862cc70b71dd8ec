"""Startup cost: `import runyard` (budget 100 ms), `runyard --help` (budget 150 ms), and the first
use: `from runyard import Run` and `from runyard import task, workflow` (budget: each 60 ms over
bare Python), without making the first `log_metrics` slower (issue 16).

Baseline in the same run: a bare Python interpreter start (`python -c pass`) and the import of
a small stdlib package (`import json`), so the figures can be read against this machine.
The first use is also timed inside fresh processes: the import, the first `Run(...).init()` on a
new `sqlite:` store (where what the import leaves out is paid), the first `log_metrics` call
beside the first append to a list, and `close()`; medians over the processes.
Run: .venv/bin/python benchmarks/bench_startup.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = 15
FIRST_USES = 9
BIN = Path(sys.executable).parent
IMPORT_BUDGET_MS = 60.0  # over bare Python, for each of the two first-use imports

FIRST_USE = """
import time
t0 = time.perf_counter()
from runyard import Run
t1 = time.perf_counter()
run = Run("sqlite://" + FOLDER + "/first.db", heartbeat_interval=None, resources_interval=None)
run.init()
t2 = time.perf_counter()
run.log_metrics({"loss": 0.5}, step=0)
t3 = time.perf_counter()
kept = []
kept.append(({"loss": 0.5}, 0, time.time()))
t4 = time.perf_counter()
run.close()
t5 = time.perf_counter()
import json
print(json.dumps({"import": t1 - t0, "init": t2 - t1, "log": t3 - t2, "append": t4 - t3,
                  "close": t5 - t4}))
"""


def median_ms(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def first_uses() -> dict[str, float]:
    """Medians (seconds) of each part of a first use, each in a fresh process and store."""
    parts: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(FIRST_USES):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            code = FIRST_USE.replace("FOLDER", repr(str(folder)))
            done = subprocess.run([sys.executable, "-c", code], check=True, cwd=folder,
                                  capture_output=True, text=True)
            for key, value in json.loads(done.stdout).items():
                parts.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in parts.items()}


def main() -> None:
    py = sys.executable
    bare = median_ms([py, "-c", "pass"])
    stdlib = median_ms([py, "-c", "import json"])
    imp = median_ms([py, "-c", "import runyard"])
    run = median_ms([py, "-c", "from runyard import Run"])
    dsl = median_ms([py, "-c", "from runyard import task, workflow"])
    help_ = median_ms([str(BIN / "runyard"), "--help"])
    print(f"baseline  python -c pass                         {bare:7.1f} ms")
    print(f"baseline  python -c 'import json'                {stdlib:7.1f} ms")
    print(f"runyard   import runyard                         {imp:7.1f} ms   (budget 100 ms)")
    print(f"runyard   from runyard import Run                {run:7.1f} ms   "
          f"(+{run - bare:.1f} ms; budget +{IMPORT_BUDGET_MS:.0f} ms)")
    print(f"runyard   from runyard import task, workflow     {dsl:7.1f} ms   "
          f"(+{dsl - bare:.1f} ms; budget +{IMPORT_BUDGET_MS:.0f} ms)")
    print(f"runyard   runyard --help                         {help_:7.1f} ms   (budget 150 ms)")
    first = first_uses()
    total = first["import"] + first["init"] + first["log"] + first["close"]
    print(f"first use in a fresh process (medians of {FIRST_USES}):")
    print(f"  from runyard import Run                {first['import'] * 1e3:8.1f} ms")
    print(f"  Run(sqlite:).init(), new store         {first['init'] * 1e3:8.1f} ms")
    print(f"  the first log_metrics call             {first['log'] * 1e6:8.1f} us")
    print(f"  baseline: the first list append        {first['append'] * 1e6:8.1f} us")
    print(f"  close()                                {first['close'] * 1e3:8.1f} ms")
    print(f"  all of it                              {total * 1e3:8.1f} ms")
    ok = (imp <= 100 and help_ <= 150 and run - bare <= IMPORT_BUDGET_MS
          and dsl - bare <= IMPORT_BUDGET_MS)
    print("within budget" if ok else "OVER BUDGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
