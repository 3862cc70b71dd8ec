"""Copies that race: two copies into one destination at once write every row exactly once.

Each copy is a real process (two ``runyard store copy`` commands, or two copiers released at
the same moment), run several times against every destination several processes can share;
the in-memory store, which only one process can reach, races two threads instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from runyard.blobs import BlobStore
from runyard.core.context import open_context
from runyard.core.copy import CopyReport, copy_store, copy_store_urls
from runyard.model import Metric
from runyard.stores import RunStore, open_store
from runyard.testing import make_run
from test_copy import populate, snapshot
from together import race

TRIALS = 3
RUNS = 6

# a copier that says "ready", waits for a line on stdin, copies, and prints its report
COPIER = textwrap.dedent("""
    import dataclasses, json, sys
    from runyard.core.copy import copy_store_urls
    print("ready", flush=True)
    sys.stdin.readline()
    report = copy_store_urls(sys.argv[1], sys.argv[2])
    print(json.dumps(dataclasses.asdict(report)), flush=True)
""")


def destination(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    if kind == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    if kind == "sqlite":
        return f"sqlite://{folder}/runyard.db"
    return f"{kind}://{folder}"


def fresh_destination(kind: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty destination for one trial (PostgreSQL: the test's database, emptied)."""
    url = destination(kind, folder, request)
    if kind == "postgresql":
        store = open_store(url)
        for run in store.list_runs():
            store.delete_run(run.id)
        store.close()
    return url


def source(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    url = f"sqlite://{tmp_path}/src/runyard.db"
    store = open_store(url)
    populate(store, open_context(url).blobs, RUNS)
    return url, snapshot(store)


def env() -> dict[str, str]:
    keep = {"RUNYARD_BLOBS"}  # (set for a store with no folder of its own: PostgreSQL)
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_") or k in keep}


def race_copiers(src: str, dst: str, cwd: Path) -> list[dict[str, int]]:
    """Start two copiers, release them together, and return their reports."""
    return [json.loads(out) for out in race(COPIER, [src, dst], 2, cwd=cwd, env=env())]


def race_cli(src: str, dst: str, cwd: Path) -> None:
    """Two ``runyard store copy`` commands started at once, as two users would."""
    command = [sys.executable, "-m", "runyard", "store", "copy", src, dst]
    children = [subprocess.Popen(command, cwd=cwd, env=env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err


def check_equal_and_settled(src: str, dst: str, expected: dict[str, Any]) -> None:
    store = open_store(dst)
    try:
        assert snapshot(store) == expected
    finally:
        store.close()
    again = copy_store_urls(src, dst)  # and a repeat finds nothing to do
    assert again == CopyReport(unchanged=RUNS), again


@pytest.mark.parametrize("kind", ["file", "chunked", "sqlite", "postgresql"])
def test_two_copy_processes_into_one_destination_write_everything_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_BLOBS", str(tmp_path / "pg-blobs"))  # (PostgreSQL: configured)
    src, expected = source(tmp_path)
    for trial in range(TRIALS):
        dst = fresh_destination(kind, tmp_path / f"dst-{trial}", request)
        reports = race_copiers(src, dst, tmp_path)
        assert sum(r["copied"] for r in reports) == RUNS  # each run created by one of them
        check_equal_and_settled(src, dst, expected)


@pytest.mark.parametrize("kind", ["chunked", "sqlite"])
def test_two_store_copy_commands_at_once_duplicate_nothing(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src, expected = source(tmp_path)
    for trial in range(TRIALS):
        dst = fresh_destination(kind, tmp_path / f"dst-{trial}", request)
        race_cli(src, dst, tmp_path)
        check_equal_and_settled(src, dst, expected)


def race_threads(src: str, dst: RunStore, blobs: Path) -> None:
    """Two threads copying ``src`` into the one store object ``dst``, released together."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def copy() -> None:
        try:
            barrier.wait()
            copy_store(open_store(src), dst, open_context(src).blobs, BlobStore(blobs))
        except BaseException as exc:  # (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=copy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_threads_copying_into_one_memory_store_write_everything_once(
    tmp_path: Path,
) -> None:
    src, expected = source(tmp_path)
    for _ in range(TRIALS):
        dst = open_store(f"memory://{uuid.uuid4().hex}")
        race_threads(src, dst, tmp_path / "mem-blobs")
        assert snapshot(dst) == expected


def test_a_destination_holding_more_than_the_source_is_reported_not_unchanged(
    tmp_path: Path,
) -> None:
    """What an earlier racing copy left (every metric twice) is said, with a non-zero exit."""
    src = f"chunked://{tmp_path}/src"
    dst = f"sqlite://{tmp_path}/dst/runyard.db"
    store = open_store(src)
    run = store.create_run(make_run())
    store.append_metrics(run.id, [Metric("m", 1.0, 0, 1.0)] * 3)
    assert copy_store_urls(src, dst).copied == 1
    doubled = open_store(dst)
    doubled.append_metrics(run.id, [Metric("m", 1.0, 0, 1.0)] * 3)
    doubled.close()
    report = copy_store_urls(src, dst)
    assert report.unchanged == 1 and len(report.surplus) == 1
    assert "has 6 metrics" in report.surplus[0]
    done = subprocess.run([sys.executable, "-m", "runyard", "store", "copy", src, dst],
                          cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "has 6 metrics" in done.stderr and "error: 1 runs hold more" in done.stderr
