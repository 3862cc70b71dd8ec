"""Command runs: `run exec` overhead (budget 150 ms over the shell) and buffer streaming
throughput of a `cat` job (budget 300 MB/s), each beside the same work done directly.

- overhead: `runyard run exec` of a codespec running `true`, minus `bash -c true` run directly
  (medians of REPEAT runs, after one warm-up). As a user's repeated commands are, these are
  served by the agent (``runyard.cli.agent``), which this benchmark starts with a socket of its
  own; the same without the agent (``RUNYARD_AGENT=0``: a fresh interpreter, click and the
  store imported every time, as for the first command after the agent has left) is shown
  beside it, not budgeted;
- throughput: SIZE random bytes through `runyard run exec` of a `cat` codespec (stdin -> input
  buffer -> named pipe -> cat -> named pipe -> output buffer -> stdout), beside plain `cat` of
  the same file; the median of STREAMS runs, each with new random bytes (bytes the store holds
  already are not written again, which would flatter a repeated run). Buffer chunks are
  addressed by BLAKE3 (see ``runyard.commands.buffers``). The output of `cat` repeats its
  input, so its chunks are hashed and found in the store, not written again; the `swab` line
  (not budgeted) shows a job whose output differs, hashed and written in full.
The environment is kept as it is (``PYTHONDONTWRITEBYTECODE`` included); like
``scripts/setup.sh``, the package is byte-compiled first, so the figures are those of an
installed runyard, not of one that recompiles its modules at every start.
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
STREAMS = 3
SIZE = 512 << 20
AGENT_SOCKET = ""  # set in main: the agent of this run
RUNYARD = str(Path(sys.executable).parent / "runyard")
TRIVIAL = "name: trivial\ncommand: [\"true\"]\n"
CAT = ("name: cat\nbuffers: {inputs: [input], outputs: [output]}\n"
       'command: ["bash", "-c", "cat \\"$INPUT_PIPE\\" > \\"$OUTPUT_PIPE\\""]\n')
SWAB = ("name: swab\nbuffers: {inputs: [input], outputs: [output]}\n"
        'command: ["bash", "-c", "dd if=\\"$INPUT_PIPE\\" of=\\"$OUTPUT_PIPE\\" bs=1M '
        'iflag=fullblock conv=swab status=none"]\n')


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without ``RUNYARD_*`` settings, plus the agent of this
    benchmark (a socket of its own, see ``runyard.cli.agent``) and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, "RUNYARD_AGENT_SOCKET": AGENT_SOCKET, **extra}


def start_agent() -> subprocess.Popen[bytes]:
    agent = subprocess.Popen([sys.executable, "-m", "runyard.cli.agent", AGENT_SOCKET],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    while not os.path.exists(AGENT_SOCKET):
        time.sleep(0.05)
    return agent


def compile_package() -> None:
    """Write the bytecode caches, as the installation does (``compileall``)."""
    import runyard

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(runyard.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)


def timed(cmd: list[str], cwd: Path, stdin: Path | None = None, **env: str) -> float:
    with open(stdin or os.devnull, "rb") as source:
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=environment(**env), stdin=source, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def median_ms(cmd: list[str], cwd: Path, **env: str) -> float:
    timed(cmd, cwd, **env)
    return statistics.median(timed(cmd, cwd, **env) for _ in range(REPEAT)) * 1000


def random_file(path: Path) -> Path:
    with open(path, "wb") as out:
        for _ in range(SIZE >> 20):
            out.write(os.urandom(1 << 20))
    return path


def streamed_mbs(codespec: str, cwd: Path, runs: int) -> float:
    """Median MB/s of ``runs`` streams of new random bytes through a ``codespec`` job."""
    rates = []
    for _ in range(runs):
        data = random_file(cwd / "data.bin")
        rates.append(SIZE / timed([RUNYARD, "run", "exec", "-c", codespec], cwd, data) / 1e6)
        data.unlink()
    return statistics.median(rates)


def main() -> None:
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        global AGENT_SOCKET
        AGENT_SOCKET = str(Path(tmp) / "agent.sock")
        agent = start_agent()
        cwd = Path(tmp)
        for name, text in (("trivial", TRIVIAL), ("cat", CAT), ("swab", SWAB)):
            (cwd / f"{name}.yml").write_text(text)
            subprocess.run([RUNYARD, "codespec", "create", "-f", f"{name}.yml"], cwd=cwd,
                           env=environment(), check=True, capture_output=True)
        load = os.getloadavg()[0]
        shell = median_ms(["bash", "-c", "true"], cwd)
        runyard = median_ms([RUNYARD, "run", "exec", "-c", "trivial"], cwd)
        cold = median_ms([RUNYARD, "run", "exec", "-c", "trivial"], cwd, RUNYARD_AGENT="0")
        plain = SIZE / timed(["cat"], cwd, random_file(cwd / "plain.bin")) / 1e6
        timed([RUNYARD, "run", "exec", "-c", "cat"], cwd, cwd / "trivial.yml")
        streamed = streamed_mbs("cat", cwd, STREAMS)
        swabbed = streamed_mbs("swab", cwd, 1)
        load = max(load, os.getloadavg()[0])
        agent.terminate()
        agent.wait()
    over = runyard - shell
    print(f"load average (1 min, highest seen)       {load:8.2f}")
    print(f"baseline  bash -c true                   {shell:8.1f} ms")
    print(f"runyard   run exec (true)                {runyard:8.1f} ms   "
          f"(+{over:.1f} ms; budget +150 ms)")
    print(f"runyard   run exec (true), no agent      {cold:8.1f} ms   "
          f"(+{cold - shell:.1f} ms: RUNYARD_AGENT=0, or the first command after the agent "
          "left; not budgeted)")
    print(f"baseline  cat {SIZE >> 20} MiB                     {plain:8.0f} MB/s")
    print(f"runyard   run exec cat {SIZE >> 20} MiB            {streamed:8.0f} MB/s   "
          "(budget 300 MB/s)")
    print(f"runyard   run exec dd conv=swab {SIZE >> 20} MiB   {swabbed:8.0f} MB/s   "
          "(output differs from input: hashed and written in full; not budgeted)")
    ok = over <= 150 and streamed >= 300
    print("within budget" if ok else "OVER BUDGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
