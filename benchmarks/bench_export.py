"""``runyard export`` of a version with 3 recorded runs beside ``zip`` of the same files.

Budget: the export takes at most 1.5x what ``zip -r -6`` (zip's default level) takes to zip
the very files the export holds (the version's files under ``workspace/``, each run's outputs
under ``runs/<name>/``), in the same run. Both are timed end to end as a user runs them: a
``python -m runyard export`` process (store reads, RO-Crate metadata, SHA-512 bag manifests,
SHA-256 checks of every blob, the zip, its fsync) against a ``zip`` process, and ``zip`` plus
an fsync of its zip (the export's result is durable; zip's is not). Both deflate at level 6;
the export stores data that does not shrink (a 64 KB sample tells), where zip deflates it and
then keeps it stored: ``--binary-mb 0`` gives the comparison where both must deflate
everything. The files are in the page cache for both; repetitions are interleaved; medians
and ranges are printed, with the zips' sizes.
Run: ``.venv/bin/python benchmarks/bench_export.py [--reps 3] [--text-mb 64] [--binary-mb 32]``
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
RUNS = 3


def text_pool(size: int, seed: int = 7) -> bytes:
    """CSV-like text (numbers, names): deflates to about a third, as logs and data do."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "loss", "accuracy", "epoch", "sample"]
    lines, total = [], 0
    while total < size:
        line = (f"{rng.randrange(10**6)},{rng.choice(words)},{rng.random():.6f},"
                f"{rng.gauss(0, 1):.4f},{rng.choice(words)}-{rng.randrange(100)}\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make_files(folder: Path, text_mb: int, binary_mb: int, count: int, pool: bytes,
               tag: str) -> dict[str, bytes]:
    """``count`` files (two thirds text) totalling about ``text_mb`` + ``binary_mb`` MB."""
    files: dict[str, bytes] = {}
    texts = max(1, count * 2 // 3) if text_mb else 0
    binaries = count - texts if binary_mb else 0
    for i in range(texts):
        size = text_mb * (1 << 20) // texts
        start = (i * 7919 + len(tag) * 104729) % (len(pool) - size)
        files[f"{tag}/text/part-{i:04d}.csv"] = pool[start:start + size]
    for i in range(binaries):
        files[f"{tag}/bin/blob-{i:04d}.bin"] = os.urandom(binary_mb * (1 << 20) // binaries)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def build(work: Path, text_mb: int, binary_mb: int) -> tuple[str, Path]:
    """A store with version ``bench`` and 3 recorded runs; the folder of the same files."""
    sys.path.insert(0, SRC)
    from runyard.core.context import open_context
    from runyard.core.runs import create_run
    from runyard.model import Artifact, Kind, Stage, Status
    from runyard.recording.versions import create_version, read_manifest

    url = f"sqlite://{work}/store/runyard.db"
    context = open_context(url)
    pool = text_pool(max(text_mb, 1) * (1 << 20) // 2 + (8 << 20))
    ws, same = work / "ws", work / "same"
    (ws).mkdir()
    (ws / "runyard.yaml").write_text("")
    for name, data in make_files(ws, text_mb, binary_mb, 300, pool, "src").items():
        _put(same / "workspace" / name, data)
    _put(same / "workspace" / "runyard.yaml", b"")
    version = create_version(context, ws, name="bench")
    manifest = read_manifest(context, version)
    inputs = [Artifact(p, e.sha256, e.size, Stage.GET) for p, e in manifest.items()]
    for r in range(RUNS):
        run = create_run(context.store, name=f"run-{r}", kind=Kind.RECORDED,
                         status=Status.RUNNING,
                         internals={"version": version.id, "entrypoint": ["sh", "run.sh"],
                                    "executor": "sandbox", "network": False})
        outputs = make_files(work / "out", text_mb // 8, binary_mb // 8, 12, pool, f"run{r}")
        catalog = list(inputs)
        for name, data in outputs.items():
            ref = context.blobs.put_bytes(data)
            catalog.append(Artifact(name, ref.digest, ref.size, Stage.PUT))
            _put(same / "runs" / f"run-{r}" / name, data)
        context.store.add_artifacts(run.id, catalog)
        context.store.update_status(run.id, Status.SUCCEEDED)
    return url, same


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def time_export(url: str, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": SRC, "RUNYARD_STORE": url}
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runyard", "export", "bench", "-o", str(out)],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - begin


def time_zip(same: Path, out: Path) -> tuple[float, float]:
    begin = time.perf_counter()
    subprocess.run(["zip", "-q", "-r", "-6", str(out), "."], cwd=same, check=True)
    zipped = time.perf_counter() - begin
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return zipped, time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--text-mb", type=int, default=64)
    parser.add_argument("--binary-mb", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        url, same = build(work, args.text_mb, args.binary_mb)
        total = sum(p.stat().st_size for p in same.rglob("*") if p.is_file())
        files = sum(1 for p in same.rglob("*") if p.is_file())
        print(f"version with {RUNS} runs: {files} files, {total / 1e6:.0f} MB "
              f"({args.text_mb} MB text, {args.binary_mb} MB random in the workspace); "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        times: dict[str, list[float]] = {"export": [], "zip": [], "zip+fsync": []}
        sizes = {}
        for rep in range(args.reps):
            os.sync()
            times["export"].append(time_export(url, work / f"export-{rep}.zip"))
            os.sync()
            zipped, synced = time_zip(same, work / f"zip-{rep}.zip")
            times["zip"].append(zipped)
            times["zip+fsync"].append(synced)
            sizes = {"export": (work / f"export-{rep}.zip").stat().st_size,
                     "zip": (work / f"zip-{rep}.zip").stat().st_size}
            for name in ("export", "zip"):
                (work / f"{name}-{rep}.zip").unlink()
        for name, values in times.items():
            print(f"{name:>10}: median {statistics.median(values):.2f} s "
                  f"(range {min(values):.2f}-{max(values):.2f})")
        export = statistics.median(times["export"])
        print(f"export / zip: {export / statistics.median(times['zip']):.2f}x; "
              f"export / (zip+fsync): {export / statistics.median(times['zip+fsync']):.2f}x "
              f"(budget 1.5x); zips: export {sizes['export'] / 1e6:.1f} MB, "
              f"zip {sizes['zip'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
