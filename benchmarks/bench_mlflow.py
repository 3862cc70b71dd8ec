"""The same ``mlflow`` script against ``runyard server`` and against ``mlflow server`` on SQLite.

Budget (issue 15): runyard >= 5x faster end to end. The script is an ordinary MLflow tracking
script, run by the real client (the pinned ``mlflow``) in this process: set an experiment,
start 1 run, log 20 params (``log_params``), 10,000 metric values with ``log_metrics`` in
batches of 100 (100 calls), 5 artifacts (``log_artifact``), end the run, then ``search_runs``.
Both servers run as their users start them, on 127.0.0.1, each over a SQLite store in a fresh
temporary folder: ``runyard server`` (one worker, the default; the token in
``MLFLOW_TRACKING_TOKEN``) and ``mlflow server --backend-store-uri sqlite:///… --host
127.0.0.1 --port P`` (its defaults: 4 workers, artifacts served through its proxy). Rounds
alternate which server goes first; the figure is each side's median over ``ROUNDS`` rounds, the
time from the first call of the script to the end of the search (server start-up and the
client's import are outside it, identical for both). The first ``WARMUP`` rounds are left out
(first requests, lazily imported handlers: ``mlflow server``'s workers take tens of seconds
over their first requests here).
Run: ``.venv/bin/python benchmarks/bench_mlflow.py [ROUNDS]``
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

from live_servers import free_port, running  # noqa: E402

ROUNDS = 5
WARMUP = 2  # rounds left out: mlflow server's four workers each initialise on first requests
PARAMS, BATCHES, PER_BATCH, ARTIFACTS = 20, 100, 100, 5
BUDGET = 5.0
START_TIMEOUT = 300.0  # (its four workers start slowly on a busy machine)


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """``mlflow server`` on SQLite in ``folder``, until the block ends; its URL."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
            f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "art"),
            "--host", "127.0.0.1", "--port", str(port)]
    with open(folder / "mlflow.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start: "
                                   + (folder / "mlflow.log").read_text()[-2000:])
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def script(experiment: str, files: list[Path]) -> int:
    """The MLflow script both servers get; how many runs its search found."""
    import mlflow

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="bench"):
        mlflow.log_params({f"param_{n}": n for n in range(PARAMS)})
        for batch in range(BATCHES):
            mlflow.log_metrics({f"metric_{n}": batch * 0.5 + n for n in range(PER_BATCH)},
                               step=batch)
        for path in files:
            mlflow.log_artifact(str(path))
    return len(mlflow.search_runs(experiment_names=[experiment]))


def timed(url: str, token: str | None, experiment: str, files: list[Path]) -> float:
    import mlflow

    if token is None:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    else:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    mlflow.set_tracking_uri(url)
    start = time.perf_counter()
    found = script(experiment, files)
    took = time.perf_counter() - start
    assert found == 1, f"search_runs found {found} runs on {url}"
    return took


def artifacts(folder: Path) -> list[Path]:
    folder.mkdir()
    files = []
    for n in range(ARTIFACTS):
        path = folder / f"artifact_{n}.txt"
        path.write_bytes(os.urandom(4096 * (n + 1)))
        files.append(path)
    return files


def main(rounds: int = ROUNDS) -> int:
    import mlflow  # noqa: F401 - imported before any timing

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "mlflow").mkdir()
        files = artifacts(root / "files")
        with running(f"sqlite://{root}/runyard/runyard.db", root / "runyard") as ours, \
                mlflow_server(root / "mlflow") as theirs:
            sides: dict[str, Callable[[str], float]] = {
                "runyard": lambda e: timed(ours.url, ours.token, e, files),
                "mlflow": lambda e: timed(theirs, None, e, files),
            }
            times: dict[str, list[float]] = {"runyard": [], "mlflow": []}
            for n in range(rounds + WARMUP):
                order = ["runyard", "mlflow"] if n % 2 else ["mlflow", "runyard"]
                this = {name: sides[name](f"bench-{n}") for name in order}
                for name, took in this.items():
                    if n >= WARMUP:
                        times[name].append(took)
                print(f"round {n}{' (warm-up)' if n < WARMUP else ''}: "
                      + ", ".join(f"{k} {v:.3f} s" for k, v in sorted(this.items())),
                      file=sys.stderr)
    ours_s, theirs_s = (statistics.median(times[k]) for k in ("runyard", "mlflow"))
    ratio = theirs_s / ours_s
    paired = statistics.median(t / o for t, o in zip(times["mlflow"], times["runyard"],
                                                     strict=True))
    calls = 1 + 1 + 1 + BATCHES + ARTIFACTS + 1 + 1
    print(f"mlflow script ({PARAMS} params, {BATCHES * PER_BATCH} metric values in "
          f"{BATCHES} log_metrics calls, {ARTIFACTS} artifacts, search_runs; about {calls} "
          f"client calls), median of {rounds} interleaved rounds:")
    print(f"  runyard server: {ours_s * 1000:8.1f} ms")
    print(f"  mlflow server:  {theirs_s * 1000:8.1f} ms")
    print(f"  each round's mlflow/runyard ratio, median: {paired:.1f}x (a pair of rounds "
          "runs back to back: the steadier figure on a busy machine)")
    print(f"  runyard is {ratio:.1f}x faster (budget >= {BUDGET:.0f}x): "
          f"{'OK' if ratio >= BUDGET else 'MISSED'}")
    return 0 if ratio >= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS))
