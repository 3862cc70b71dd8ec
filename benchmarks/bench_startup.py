"""Startup cost: `import runyard` (budget 100 ms) and `runyard --help` (budget 150 ms).

Baseline in the same run: a bare Python interpreter start (`python -c pass`) and the import of
a small stdlib package (`import json`), so the figures can be read against this machine.
Run: .venv/bin/python benchmarks/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEAT = 15
BIN = Path(sys.executable).parent


def median_ms(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    py = sys.executable
    bare = median_ms([py, "-c", "pass"])
    stdlib = median_ms([py, "-c", "import json"])
    imp = median_ms([py, "-c", "import runyard"])
    help_ = median_ms([str(BIN / "runyard"), "--help"])
    print(f"baseline  python -c pass          {bare:7.1f} ms")
    print(f"baseline  python -c 'import json' {stdlib:7.1f} ms")
    print(f"runyard   import runyard          {imp:7.1f} ms   (budget 100 ms)")
    print(f"runyard   runyard --help          {help_:7.1f} ms   (budget 150 ms)")
    ok = imp <= 100 and help_ <= 150
    print("within budget" if ok else "OVER BUDGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
