"""Ray as a user meets it: runyard's task runs against raw Ray tasks on the same local cluster.

Budgets: a fan-out of 500 trivial tasks plus a reduce at most 1.5 times raw Ray's per-task
time, a chain of 100 at most 1.3 times. The cluster is started by runyard
(``RuntimeConfiguration.ray(port=…, num_cpus=2).start()``), as a user starts it, and stopped
at the end. Each case then runs in a fresh process connected as a user connects (runyard: a
workflow run on that configuration; raw Ray: ``ray.init(address=…)``): one short warm-up of
3 tasks, then the timed workload. Cases take turns (runyard, raw, runyard, raw, …) and each
figure is the median of ``REPEAT`` processes, with their range. Raw Ray's chain is written
the Ray way (each task given the previous one's ObjectRef, so Ray queues the next task before
the last ends), as runyard's driver now submits task runs ahead on Ray (``engine.driver``); a
last, unbudgeted line times the chain with a ``ray.get`` per task, the round trip runyard's
driver made before (it recorded each result before it submitted the next task).
Run: ``.venv/bin/python benchmarks/bench_ray.py [REPEAT]`` (``BENCH_RAY_VERBOSE=1``: every
process's time and CPU).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# runyard's local cluster is on loopback; a plain Ray driver keeps 127.0.0.1 as it is (and does
# not look for the machine's outward address) in Ray's single-node mode, set before Ray loads
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHAIN, FAN, REPEAT, PORT = 100, 500, 5, 48950
BUDGETS = {"fan": 1.5, "chain": 1.3}
TASKS = {"fan": FAN + 1, "chain": CHAIN}


def config() -> object:
    from runyard import RuntimeConfiguration

    return RuntimeConfiguration.ray(port=PORT, num_cpus=2, name="bench-ray")


def case_runyard(kind: str, store: str) -> tuple[float, float]:
    import bench_wf_tasks as wf

    conf = config()
    wf.chain(3).run(conf, store=store).get_results(wait=True)  # warm-up: 3 tasks
    plan = wf.fan(FAN) if kind == "fan" else wf.chain(CHAIN)
    start, cpu = time.perf_counter(), time.process_time()
    plan.run(conf, store=store).get_results(wait=True)
    return time.perf_counter() - start, time.process_time() - cpu


def case_raw(kind: str, address: str) -> tuple[float, float]:
    import bench_wf_tasks as wf
    import ray

    ray.init(address=address)
    inc, total = ray.remote(wf.inc_plain), ray.remote(wf.sum_plain)
    x = 0
    for _ in range(3):  # warm-up: 3 tasks, one after another (as runyard's)
        x = ray.get(inc.remote(x))
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "fan":
        ray.get(total.remote(ray.get([inc.remote(i) for i in range(FAN)])))
    elif kind == "chain":  # Ray's way: each task given the previous one's ObjectRef
        ref: Any = 0
        for _ in range(CHAIN):
            ref = inc.remote(ref)
        ray.get(ref)
    else:  # a round trip per task, as runyard's driver makes them (not budgeted)
        x = 0
        for _ in range(CHAIN):
            x = ray.get(inc.remote(x))
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    ray.shutdown()
    return elapsed


def child(side: str, kind: str, arg: str) -> None:
    elapsed, cpu = case_runyard(kind, arg) if side == "runyard" else case_raw(kind, arg)
    print(json.dumps({"s": elapsed, "cpu": cpu}))


def run_case(side: str, kind: str, arg: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", side, kind, arg],
                         capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{side} {kind} failed:\n{out.stderr[-3000:]}")
    if os.environ.get("BENCH_RAY_VERBOSE"):
        print(side, kind, out.stdout.strip().splitlines()[-1])
    return float(json.loads(out.stdout.strip().splitlines()[-1])["s"])


def measure(repeat: int, store: str, address: str) -> dict[tuple[str, str], list[float]]:
    times: dict[tuple[str, str], list[float]] = {}
    cases = [("runyard", "fan"), ("raw", "fan"), ("runyard", "chain"), ("raw", "chain"),
             ("raw", "chain-get")]
    for _ in range(repeat):
        for side, kind in cases:
            arg = store if side == "runyard" else address
            times.setdefault((side, kind), []).append(run_case(side, kind, arg))
    return times


def report(times: dict[tuple[str, str], list[float]]) -> bool:
    ok = True
    for kind, n in TASKS.items():
        ours, raw = ([t / n * 1e3 for t in times[(s, kind)]] for s in ("runyard", "raw"))
        ratio = statistics.median(ours) / statistics.median(raw)
        ratios = sorted(a / b for a, b in zip(ours, raw, strict=True))
        ok &= ratio <= BUDGETS[kind]
        print(f"{kind} ({n} tasks): raw Ray {statistics.median(raw):.3f} ms/task "
              f"({min(raw):.3f}-{max(raw):.3f}), runyard {statistics.median(ours):.3f} ms/task "
              f"({min(ours):.3f}-{max(ours):.3f}) -> {ratio:.2f}x (pairs {ratios[0]:.2f}-"
              f"{ratios[-1]:.2f}x; budget {BUDGETS[kind]}x)")
    get = [t / CHAIN * 1e3 for t in times[("raw", "chain-get")]]
    print(f"(raw Ray chain with a ray.get per task, as runyard's driver waited for each: "
          f"{statistics.median(get):.3f} ms/task ({min(get):.3f}-{max(get):.3f}); not budgeted)")
    return ok


def main() -> int:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else REPEAT
    os.environ["RAY_AUTH_MODE"] = "disabled"
    with tempfile.TemporaryDirectory(prefix="bry") as tmp:
        os.environ["RUNYARD_CONFIG_HOME"] = str(Path(tmp) / "config")
        from runyard.engine import stop_ray_cluster

        start = time.perf_counter()
        address = str(config().start())  # type: ignore[attr-defined]
        print(f"cluster up in {time.perf_counter() - start:.1f} s at {address}")
        try:
            ok = report(measure(repeat, f"sqlite://{tmp}/store/runyard.db", address))
        finally:
            stop_ray_cluster("bench-ray")
    print("within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    else:
        sys.exit(main())
