"""Recorded runs: `runyard record` of a trivial entrypoint with its environment cached, beside
running the same entrypoint directly (budget: 200 ms over it).

The workspace holds ``main.py`` (prints a line and writes one small file) and a
``requirements.txt`` naming one small package from this machine's index, so the environment is
a real uv environment, built once in the warm-up and found in the cache after. Each round
runs, interleaved, each in a fresh process:
- direct: ``<env>/bin/python main.py`` in a copy of the workspace (the same interpreter and
  packages);
- record: ``runyard record main.py``: a new version of the workspace, a fresh work folder
  materialised from the blob store, the cached environment, the job in the bubblewrap sandbox
  under a warden, its outputs hashed into the blob store, the catalog, ``runs/<name>/``, the
  final status. As a user's repeated commands are, it is served by the agent
  (``runyard.cli.agent``, started here with a socket of its own); the same with
  ``--executor local``, and without the agent (``RUNYARD_AGENT=0``: a fresh interpreter that
  imports the command line and the store, as the first command after the agent has left),
  are shown beside it, not budgeted.
Medians of ROUNDS rounds after one warm-up. The package is byte-compiled first, as the
installation does. Run: .venv/bin/python benchmarks/bench_record.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 15
BUDGET_MS = 200.0
MAIN = "print('hello')\nopen('out.txt', 'w').write('result')\n"
RUNYARD = str(Path(sys.executable).parent / "runyard")


def environment(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, "RUNYARD_STORE": f"sqlite://{root}/store/runyard.db",
            "RUNYARD_AGENT_SOCKET": str(root / "agent" / "agent.sock"), **extra}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def compile_package() -> None:
    import runyard

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(runyard.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)


def start_agent(root: Path) -> subprocess.Popen[bytes]:
    socket = root / "agent" / "agent.sock"
    agent = subprocess.Popen([sys.executable, "-m", "runyard.cli.agent", str(socket)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    while not socket.exists():
        time.sleep(0.05)
    return agent


def env_python(root: Path) -> str:
    """The cached environment's interpreter (the one the warm-up built)."""
    envs = [p for p in (root / "store" / "envs").iterdir() if not p.name.startswith(".")]
    assert len(envs) == 1, envs
    return str(envs[0] / "bin" / "python")


def workspace(root: Path) -> tuple[Path, Path]:
    """The workspace, and a copy to run in directly (what it writes must not become part of
    the next version)."""
    ws, plain = root / "ws", root / "plain"
    for folder in (ws, plain):
        folder.mkdir()
        (folder / "main.py").write_text(MAIN)
    (ws / "runyard.yaml").write_text("")
    (ws / "requirements.txt").write_text("six\n")
    return ws, plain


def main() -> None:
    compile_package()
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        root = Path(tmp)
        ws, plain = workspace(root)
        agent = start_agent(root)
        try:
            times = measure(root, ws, plain)
        finally:
            agent.terminate()
            agent.wait()
        report(times)


def measure(root: Path, ws: Path, plain: Path) -> dict[str, list[float]]:
    env, cold = environment(root), environment(root, RUNYARD_AGENT="0")
    commands = {"sandbox": ([RUNYARD, "record", "main.py"], env),
                "local": ([RUNYARD, "record", "--executor", "local", "main.py"], env),
                "no agent": ([RUNYARD, "record", "main.py"], cold)}
    timed(commands["sandbox"][0], ws, env)  # warm-up: builds the environment once
    direct = [env_python(root), "main.py"]
    times: dict[str, list[float]] = {"direct": [], **{name: [] for name in commands}}
    for _ in range(ROUNDS):
        times["direct"].append(timed(direct, plain, env))
        for name, (cmd, cmd_env) in commands.items():
            times[name].append(timed(cmd, ws, cmd_env))
    return times


def report(times: dict[str, list[float]]) -> None:
    ms = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, rounds: {ROUNDS}")
    print(f"direct (env python main.py)               {ms['direct']:7.1f} ms")
    over = ms["sandbox"] - ms["direct"]
    verdict = "within" if over <= BUDGET_MS else "OVER"
    print(f"runyard record main.py (sandbox)          {ms['sandbox']:7.1f} ms  "
          f"{over:+7.1f} ms over direct ({verdict} the {BUDGET_MS:.0f} ms budget)")
    print(f"runyard record --executor local main.py   {ms['local']:7.1f} ms  "
          f"{ms['local'] - ms['direct']:+7.1f} ms (not budgeted)")
    print(f"runyard record main.py, no agent          {ms['no agent']:7.1f} ms  "
          f"{ms['no agent'] - ms['direct']:+7.1f} ms (RUNYARD_AGENT=0, or the first command "
          "after the agent has left; not budgeted)")


if __name__ == "__main__":
    main()
