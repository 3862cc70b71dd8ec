"""Command runs: `run exec` overhead (budget 150 ms over the shell) and buffer streaming
throughput of a `cat` job (budget 300 MB/s), each beside the same work done directly.

- overhead: `runyard run exec` of a codespec running `true`, minus `bash -c true` run directly
  (medians of REPEAT runs, after one warm-up that also writes the bytecode caches);
- throughput: SIZE random bytes through `runyard run exec` of a `cat` codespec (stdin -> input
  buffer -> named pipe -> cat -> named pipe -> output buffer -> stdout), beside plain `cat` of
  the same file.
Run: .venv/bin/python benchmarks/bench_commands.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = 10
SIZE = 512 << 20
RUNYARD = str(Path(sys.executable).parent / "runyard")
TRIVIAL = "name: trivial\ncommand: [\"true\"]\n"
CAT = ("name: cat\nbuffers: {inputs: [input], outputs: [output]}\n"
       'command: ["bash", "-c", "cat \\"$INPUT_PIPE\\" > \\"$OUTPUT_PIPE\\""]\n')


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RUNYARD_") and k != "PYTHONDONTWRITEBYTECODE"}
    return env


def timed(cmd: list[str], cwd: Path, stdin: Path | None = None) -> float:
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=environment(), stdin=source, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def median_ms(cmd: list[str], cwd: Path) -> float:
    timed(cmd, cwd)
    return statistics.median(timed(cmd, cwd) for _ in range(REPEAT)) * 1000


def random_file(path: Path) -> Path:
    with open(path, "wb") as out:
        for _ in range(SIZE >> 20):
            out.write(os.urandom(1 << 20))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name, text in (("trivial", TRIVIAL), ("cat", CAT)):
            (cwd / f"{name}.yml").write_text(text)
            subprocess.run([RUNYARD, "codespec", "create", "-f", f"{name}.yml"], cwd=cwd,
                           env=environment(), check=True, capture_output=True)
        shell = median_ms(["bash", "-c", "true"], cwd)
        runyard = median_ms([RUNYARD, "run", "exec", "-c", "trivial"], cwd)
        data = random_file(cwd / "data.bin")
        plain = SIZE / timed(["cat"], cwd, data) / 1e6
        timed([RUNYARD, "run", "exec", "-c", "cat"], cwd, cwd / "trivial.yml")
        streamed = SIZE / timed([RUNYARD, "run", "exec", "-c", "cat"], cwd, data) / 1e6
    over = runyard - shell
    print(f"baseline  bash -c true                   {shell:8.1f} ms")
    print(f"runyard   run exec (true)                {runyard:8.1f} ms   "
          f"(+{over:.1f} ms; budget +150 ms)")
    print(f"baseline  cat {SIZE >> 20} MiB                     {plain:8.0f} MB/s")
    print(f"runyard   run exec cat {SIZE >> 20} MiB            {streamed:8.0f} MB/s   "
          "(budget 300 MB/s)")
    ok = over <= 150 and streamed >= 300
    print("within budget" if ok else "OVER BUDGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
