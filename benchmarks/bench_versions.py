"""``version create`` beside ``sha256sum`` over the same files, and a second version.

Budget (issue 12): a version of a workspace of 1 GB in 10,000 files takes at most 1.5 x what
``sha256sum`` takes to hash the same files (runyard copies every file into the blob store
while hashing it, and makes the copies durable); a second version with one file changed takes
at most 0.3 s (the stat cache: unchanged files are not read). Both are timed in process
(``create_version``) and through the command line (``runyard version create``, start-up
included). The files are read once before timing, so both tools read them from the page
cache; pending writes are synced before each timed case, and each first version goes into an
empty blob store. Repetitions are interleaved; the median and the range are printed, with
the CPU seconds (user + system) of each case beside them: on a busy machine (others' work on
its cores) the wall-clock figures wait for the CPU, the CPU figures do not.
Run: ``.venv/bin/python benchmarks/bench_versions.py [--mb 1024] [--files 10000] [--reps 3]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNYARD = str(Path(sys.executable).with_name("runyard"))


def make_workspace(root: Path, total_mb: int, count: int) -> list[Path]:
    """``count`` files of random bytes, ``total_mb`` MB in all, in 100 folders."""
    size = total_mb * 1_000_000 // count
    block = os.urandom(size + 4096)
    paths = []
    for i in range(count):
        folder = root / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i:05d}.bin"
        offset = (i * 37) % 4096  # every file different
        path.write_bytes(i.to_bytes(8, "little") + block[offset:offset + size - 8])
        paths.append(path)
    return paths


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_sha256sum(files: list[Path], cpu: dict[str, float] | None = None) -> float:
    os.sync()
    begin, used = time.perf_counter(), children_cpu()
    subprocess.run(["xargs", "-0", "sha256sum"], input=b"\0".join(map(os.fsencode, files)),
                   stdout=subprocess.DEVNULL, check=True)
    if cpu is not None:
        cpu["sha256sum"] = children_cpu() - used
    return time.perf_counter() - begin


def time_create(workspace: Path, store: Path, name: str, cpu: dict[str, float]) -> float:
    from runyard.core.context import open_context
    from runyard.recording.versions import create_version

    context = open_context(f"sqlite:///{store}/runyard.db", blobs=store / "blobs")
    os.sync()
    begin, used = time.perf_counter(), time.process_time()
    create_version(context, workspace, name=name)
    cpu[name.split("-")[0]] = time.process_time() - used
    return time.perf_counter() - begin


def time_cli(workspace: Path, store: Path, name: str, cpu: dict[str, float]) -> float:
    os.sync()
    begin, used = time.perf_counter(), children_cpu()
    subprocess.run([RUNYARD, "--store", f"sqlite:///{store}/runyard.db", "version", "create",
                    "--workspace", str(workspace), "--name", name], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "RUNYARD_BLOBS": str(store / "blobs")})
    cpu["second_cli"] = children_cpu() - used
    return time.perf_counter() - begin


def fresh_store(work: Path) -> Path:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work / "ws" / ".runyard", ignore_errors=True)  # the stat cache
    store.mkdir()
    return store


def one_rep(work: Path, files: list[Path], rep: int) -> tuple[dict[str, float], dict[str, float]]:
    """One repetition: wall-clock seconds and CPU seconds (user + system) of each case."""
    ws, cpu = work / "ws", dict[str, float]()
    out = {"sha256sum": time_sha256sum(files, cpu)}
    store = fresh_store(work)
    out["create"] = time_create(ws, store, f"create-{rep}", cpu)
    files[rep % len(files)].write_bytes(os.urandom(64))  # one file changed
    out["second"] = time_create(ws, store, f"second-{rep}", cpu)
    files[(rep + 1) % len(files)].write_bytes(os.urandom(64))
    out["second_cli"] = time_cli(ws, store, f"second-cli-{rep}", cpu)
    return out, cpu


def shown(name: str, values: list[float], cpu: list[float]) -> str:
    return (f"{name:<12} median {statistics.median(values):7.3f} s  "
            f"(range {min(values):.3f}-{max(values):.3f}); CPU {statistics.median(cpu):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="workspace size in MB")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to make the workspace and store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-versions-") as tmp:
        work = Path(tmp)
        files = make_workspace(work / "ws", args.mb, args.files)
        time_sha256sum(files)  # read once: the page cache holds them for every case
        time.sleep(1.2)  # older than the stat cache's racy window
        results: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        for rep in range(args.reps):
            wall, cpu = one_rep(work, files, rep)
            for key, value in wall.items():
                results.setdefault(key, []).append(value)
                cpus.setdefault(key, []).append(cpu[key])
    print(f"workspace: {args.mb} MB in {args.files} files; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    for key, values in results.items():
        print(shown(key, values, cpus[key]))
    ratio = statistics.median(results["create"]) / statistics.median(results["sha256sum"])
    print(f"version create / sha256sum: {ratio:.2f} x (budget 1.5 x)")
    print(f"second version, one file changed: {statistics.median(results['second']):.3f} s "
          f"in process, {statistics.median(results['second_cli']):.3f} s by the command line "
          "(budget 0.3 s)")


if __name__ == "__main__":
    main()
