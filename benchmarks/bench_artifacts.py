"""Artifacts at copy speed: ``Run.save_file`` and ``store copy`` of blobs, in MB/s.

Budget: >= 300 MB/s for many small files (200 x 100 KB) and for large ones (2 x 256 MB),
counted up to the return of ``close()`` (when the run's files are durable: fsynced, their
folder entries too), and for copying those blobs to another store with ``copy_store_urls``.
Beside them, in the same run, the plain baselines of the same work: ``shutil.copy`` of the
same files into a folder (not synced: the page cache), and ``shutil.copytree`` of the blob
folder. Each case runs in a fresh process; repetitions are interleaved; the median and the
range are printed. The source files are read once before timing, so every case reads them
from the page cache, and everything waiting to be written is synced first (runyard's batches
sync the whole file system: they would wait for the previous case's writes too). The small
files' work folders are removed at the end, not after each case: on a file system without a
journal (this machine's ext4), the inode allocator skips inodes freed within the last ~30-35 s
after reading each one (``recently_deleted``), so one case's cleanup (200-700 inodes) made
every file the next case created cost 100-250 us instead of ~8 (issue 16); the 2 x 256 MB
folders (a few inodes, but the disk's space) are removed after each case.
Run: ``.venv/bin/python benchmarks/bench_artifacts.py [--reps 3] [--large-mb 256]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = (200, 100_000)  # files, bytes each
CASES = ("copy", "save_file", "store_copy", "copytree")


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"f{i:04d}.bin"
        with open(path, "wb") as out:
            left = size
            while left:
                out.write(os.urandom(min(left, 1 << 24)))
                left -= min(left, 1 << 24)
        paths.append(path)
    return paths


def case_copy(files: list[Path], work: Path) -> float:
    out = work / "copied"
    out.mkdir()
    begin = time.perf_counter()
    for path in files:
        shutil.copy(path, out / path.name)
    return time.perf_counter() - begin


def save_all(files: list[Path], work: Path) -> float:
    from runyard import Run

    with Run(f"sqlite:///{work}/src/runyard.db", heartbeat_interval=None,
             resources_interval=None) as run:
        run.init(name="artifacts")
        begin = time.perf_counter()
        for path in files:
            run.save_file(path)
        run.close()
        return time.perf_counter() - begin


def case_store_copy(files: list[Path], work: Path) -> float:
    from runyard.core.copy import copy_store_urls

    save_all(files, work)
    begin = time.perf_counter()
    report = copy_store_urls(f"sqlite:///{work}/src/runyard.db", f"sqlite:///{work}/dst/runyard.db")
    elapsed = time.perf_counter() - begin
    assert report.blobs_copied == len(files), report
    return elapsed


def case_copytree(files: list[Path], work: Path) -> float:
    save_all(files, work)
    begin = time.perf_counter()
    shutil.copytree(work / "src" / "blobs", work / "tree")
    return time.perf_counter() - begin


def child(case: str, folder: Path) -> None:
    files = sorted(folder.glob("f*.bin"))
    for path in files:  # into the page cache, for every case alike
        path.read_bytes()
    size = sum(p.stat().st_size for p in files)
    os.sync()  # what earlier cases (and making the files) left unwritten is not this case's
    work = Path(tempfile.mkdtemp(dir=folder.parent / "work"))
    run = {"copy": case_copy, "save_file": save_all, "store_copy": case_store_copy,
           "copytree": case_copytree}[case]
    elapsed = run(files, work)
    if size > 100_000_000:  # (small files: removed with the rest at the end, see above)
        shutil.rmtree(work)
    print(json.dumps({"seconds": elapsed, "bytes": size}))


def measure(case: str, folder: Path) -> float:
    (folder.parent / "work").mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, __file__, "--child", case, str(folder)],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["bytes"]) / result["seconds"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=256)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        sets = {f"{SMALL[0]} x {SMALL[1] // 1000} KB": make_files(Path(tmp) / "small", *SMALL),
                f"2 x {args.large_mb} MB": make_files(Path(tmp) / "large", 2,
                                                     args.large_mb * 1_000_000)}
        for label, files in sets.items():
            figures: dict[str, list[float]] = {case: [] for case in CASES}
            for _ in range(args.reps):
                for case in CASES:
                    figures[case].append(measure(case, files[0].parent))
            report(label, figures)


def report(label: str, figures: dict[str, list[float]]) -> None:
    names = {"copy": "baseline  shutil.copy (page cache)",
             "save_file": "runyard   save_file .. close() (durable)",
             "copytree": "baseline  shutil.copytree of the blobs",
             "store_copy": "runyard   store copy (durable, verified)"}
    print(f"-- {label}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for case in CASES:
        values = figures[case]
        print(f"{names[case]:44} {statistics.median(values):7.0f} MB/s  "
              f"(range {min(values):.0f}-{max(values):.0f})")


if __name__ == "__main__":
    main()
