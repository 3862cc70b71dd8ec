"""The ``file:`` and ``chunked:`` stores on real files: concurrent writers, killed writers,
torn appends and the index file.

Child processes run this file as a script (``python test_file_stores.py ROLE ...``): see
``main`` at the bottom.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runyard.errors import RunNotFound, StoreError, ValidationError
from runyard.model import Event, LogLine, Metric, RunRecord, Status, Step, new_id
from runyard.stores import RunFilter, RunStore, open_store

KINDS = ["file", "chunked"]
# Updates per writer process, a quarter of each kind. The file store rewrites the whole run log
# on every change, so the cost grows with the square of this: at 2000 (500 of each kind per
# process) the file: case takes minutes.
UPDATES = int(os.environ.get("RUNYARD_SOAK_UPDATES", "500"))
PROCESSES = 4


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_run(name: str | None = None, **fields: object) -> RunRecord:
    """A new run (not ``runyard.testing.make_run``: children skip importing hypothesis)."""
    run_id = new_id()
    return RunRecord(id=run_id, name=name or f"run-{run_id.lower()}", **fields)  # type: ignore[arg-type]


def url_of(kind: str, root: Path) -> str:
    return f"{kind}://{root}"


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str], timeout: float = 600) -> str:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, err
    return out


# -- the work children do ---------------------------------------------------------------------
def hammer(store: RunStore, run_id: str, worker: int, updates: int) -> None:
    """``updates`` changes, cycling through the four kinds, each unique to this worker."""
    for i in range(updates):
        n = i // 4
        if i % 4 == 0:
            store.upsert_step(run_id, Step(f"w{worker}-step-{n}", created=float(n)))
        elif i % 4 == 1:
            store.add_tags(run_id, [f"w{worker}-tag-{n}"])
        elif i % 4 == 2:
            store.merge_metadata(run_id, {f"w{worker}-key-{n}": n})
        else:
            store.append_metrics(run_id, [Metric(f"w{worker}", float(n), n, time.time())])


def churn(store: RunStore, run_id: str, seed: int) -> None:
    """Change everything, forever, until killed; says ``ready`` after the first round."""
    for i in range(10**9):
        store.append_metrics(run_id, [Metric("m", float(i), i, time.time())] * 50)
        store.append_events(run_id, [Event(time.time(), f"event {seed}-{i}")])
        store.append_logs(run_id, [LogLine(time.time(), f"line {seed}-{i}", "stdout", "s")])
        store.upsert_step(run_id, Step(f"s{seed}-{i}", metadata={"blob": "x" * 2000}))
        store.add_tags(run_id, [f"t{seed}-{i}"])
        status = store.get_run(run_id).status
        store.update_status(run_id, Status.LOST if status is Status.RUNNING else Status.RUNNING)
        extra = store.create_run(make_run(name=f"extra-{seed}-{i}"))
        if i % 3 == 0:
            store.rename_run(extra.id, f"renamed-{seed}-{i}")
        elif i % 3 == 1:
            store.delete_run(extra.id)
        if i == 0:
            print("ready", flush=True)


def claim(store: RunStore, names: int) -> list[str]:
    """Try to create a run for each shared name; return those this process won."""
    won = []
    for n in range(names):
        try:
            store.create_run(make_run(name=f"claim-{n}"))
            won.append(f"claim-{n}")
        except Exception as exc:
            assert type(exc).__name__ == "NameTaken", exc
    return won


# -- concurrency --------------------------------------------------------------------------------
def check_hammered(store: RunStore, run_id: str, workers: int, updates: int) -> None:
    each = updates // 4  # of every kind, per worker
    expected = {f"w{w}-{{}}-{n}" for w in range(workers) for n in range(each)}
    run = store.get_run(run_id)
    assert {s.name for s in store.get_steps(run_id)} == {e.format("step") for e in expected}
    assert set(run.tags) == {e.format("tag") for e in expected}
    assert set(run.metadata) == {e.format("key") for e in expected}
    metrics = store.read_metrics(run_id)
    assert len(metrics) == workers * each
    for w in range(workers):  # each writer's metrics, in the order it appended them
        assert [m.step for m in metrics if m.name == f"w{w}"] == list(range(each))


@pytest.mark.slow
def test_concurrent_processes_lose_no_update(kind: str, tmp_path: Path) -> None:
    url = url_of(kind, tmp_path / "store")
    store = open_store(url)
    run = store.create_run(make_run())
    children = [spawn("hammer", url, run.id, str(w), str(UPDATES)) for w in range(PROCESSES)]
    for child in children:
        finish(child)
    check_hammered(store, run.id, PROCESSES, UPDATES)
    assert store.count_runs() == 1


def test_concurrent_threads_lose_no_update(kind: str, tmp_path: Path) -> None:
    store = open_store(url_of(kind, tmp_path / "store"))
    run = store.create_run(make_run())
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            hammer(store, run.id, worker, 160)  # one store object shared by every thread
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_hammered(store, run.id, 4, 160)


def test_names_stay_unique_under_concurrent_creates(kind: str, tmp_path: Path) -> None:
    url = url_of(kind, tmp_path / "store")
    children = [spawn("claim", url, "30") for _ in range(3)]
    won = [name for child in children for name in json.loads(finish(child))]
    assert sorted(won) == sorted(f"claim-{n}" for n in range(30))
    assert open_store(url).count_runs() == 30


# -- crash safety --------------------------------------------------------------------------------
def run_ids_on_disk(kind: str, root: Path) -> set[str]:
    if kind == "file":
        return {p.stem for p in root.glob("*.json") if p.name != "index.json"}
    folders = [p for p in root.iterdir() if not p.name.startswith(".")]  # .trash-*: deleted
    return {p.name for p in folders if (p / "RunLog.json").exists()}


def check_files_whole(root: Path) -> None:
    """Every JSON file a reader looks at parses; JSON-lines files may only lack a last line."""
    for path in [*root.glob("*.json"), *root.glob("*/*.json")]:
        if not path.name.startswith(".tmp-"):
            json.loads(path.read_bytes())
    for path in root.glob("*/*.jsonl"):
        lines = path.read_bytes().split(b"\n")
        for line in lines[:-1]:
            json.loads(line)


def check_readable(store: RunStore, kind: str, root: Path, run_id: str) -> None:
    check_files_whole(root)
    store.get_run(run_id)
    store.get_steps(run_id)
    store.read_metrics(run_id)
    store.read_events(run_id)
    store.read_logs(run_id)
    on_disk = {rid: store.get_run(rid) for rid in run_ids_on_disk(kind, root)}
    assert {r.id for r in store.list_runs()} == set(on_disk)
    assert store.count_runs() == len(on_disk)
    for status in (Status.RUNNING, Status.LOST, Status.CREATED):
        truth = {rid for rid, r in on_disk.items() if r.status is status}
        assert store.count_runs(RunFilter(status=frozenset({status}))) == len(truth)
    for run in on_disk.values():
        assert store.get_run_by_name(run.name).id == run.id
        wanted = RunFilter(tags=run.tags, name=run.name)  # (the name: a substring of names)
        assert [r.id for r in store.list_runs(wanted) if r.name == run.name] == [run.id]
        assert store.count_runs(wanted) == sum(wanted.matches(r) for r in on_disk.values())


def test_killed_writers_leave_a_readable_store(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = url_of(kind, root)
    store = open_store(url)
    run = store.create_run(make_run())
    store.update_status(run.id, Status.RUNNING)
    rng = random.Random(20240611)
    for seed in range(6):
        child = spawn("churn", url, run.id, str(seed))
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
        check_readable(store, kind, root, run.id)
    before = len(store.read_metrics(run.id))
    store.append_metrics(run.id, [Metric("after", 1.0, 0, 1.0)])
    assert store.read_metrics(run.id)[before:] == [Metric("after", 1.0, 0, 1.0)]
    assert not list((root / ".pending").glob("*"))


# -- torn appends (chunked) ---------------------------------------------------------------------
def test_torn_append_is_skipped_then_cut_off(tmp_path: Path) -> None:
    store = open_store(url_of("chunked", tmp_path))
    run = store.create_run(make_run())
    first = [Metric("loss", 0.5, 0, 1.0), Metric("loss", 0.4, 1, 2.0)]
    store.append_metrics(run.id, first)
    path = tmp_path / run.id / "metrics.jsonl"
    assert path.read_bytes() == b'["loss",0.5,0,1.0]\n["loss",0.4,1,2.0]\n'
    with open(path, "ab") as out:
        out.write(b'["loss",0.3,2,3')  # a writer killed mid-append
    assert store.read_metrics(run.id) == first
    store.append_metrics(run.id, [Metric("loss", 0.2, 3, 4.0)])
    assert store.read_metrics(run.id) == [*first, Metric("loss", 0.2, 3, 4.0)]
    assert path.read_bytes().endswith(b'1,2.0]\n["loss",0.2,3,4.0]\n')


def test_a_wholly_torn_file_is_emptied_before_appending(tmp_path: Path) -> None:
    store = open_store(url_of("chunked", tmp_path))
    run = store.create_run(make_run())
    (tmp_path / run.id / "events.jsonl").write_bytes(b"[1.0,\"half")
    assert store.read_events(run.id) == []
    store.append_events(run.id, [Event(2.0, "whole")])
    assert store.read_events(run.id) == [Event(2.0, "whole")]


# -- the index file -----------------------------------------------------------------------------
def made_runs(store: RunStore) -> list[RunRecord]:
    runs = [store.create_run(make_run(tags=frozenset({f"t{i}"}))) for i in range(3)]
    store.update_status(runs[1].id, Status.RUNNING)
    return [store.get_run(r.id) for r in runs]


@pytest.mark.parametrize("damage", [None, b"", b"{not json", b'{"format": 99, "runs": {}}'])
def test_index_is_rebuilt_when_missing_or_unreadable(
    kind: str, tmp_path: Path, damage: bytes | None
) -> None:
    store = open_store(url_of(kind, tmp_path))
    runs = made_runs(store)
    index = tmp_path / "index.json"
    if damage is None:
        index.unlink()
    else:
        index.write_bytes(damage)
    fresh = open_store(url_of(kind, tmp_path))
    assert fresh.list_runs(newest_first=False) == runs
    assert fresh.count_runs(RunFilter(status=frozenset({Status.RUNNING}))) == 1
    assert fresh.get_run_by_name(runs[2].name) == runs[2]
    assert set(json.loads(index.read_bytes())["runs"]) == {r.id for r in runs}


def test_an_interrupted_index_update_is_repaired(kind: str, tmp_path: Path) -> None:
    store = open_store(url_of(kind, tmp_path))
    runs = made_runs(store)
    index = tmp_path / "index.json"
    data = json.loads(index.read_bytes())
    data["runs"][runs[1].id]["status"] = "created"  # as if killed before the index write
    index.write_text(json.dumps(data))
    (tmp_path / ".pending").mkdir(exist_ok=True)
    (tmp_path / ".pending" / runs[1].id).touch()
    running = store.list_runs(RunFilter(status=frozenset({Status.RUNNING})))
    assert running == [runs[1]]
    assert not list((tmp_path / ".pending").iterdir())


def test_an_entry_without_run_files_is_absent(kind: str, tmp_path: Path) -> None:
    store = open_store(url_of(kind, tmp_path))
    runs = made_runs(store)
    index = tmp_path / "index.json"
    data = json.loads(index.read_bytes())
    ghost = make_run(name="ghost")
    data["runs"][ghost.id] = {**data["runs"][runs[0].id], "name": "ghost"}
    index.write_text(json.dumps(data))
    assert ghost.id not in {r.id for r in store.list_runs()}
    assert store.count_runs() == 3
    with pytest.raises(RunNotFound):
        store.get_run_by_name("ghost")
    assert store.create_run(make_run(name="ghost")).name == "ghost"


def test_a_damaged_run_log_is_reported_and_left_out_of_the_index(
    kind: str, tmp_path: Path
) -> None:
    store = open_store(url_of(kind, tmp_path))
    runs = made_runs(store)
    damaged = tmp_path / (f"{runs[0].id}.json" if kind == "file" else f"{runs[0].id}/RunLog.json")
    damaged.write_bytes(b'{"run": {"id"')
    (tmp_path / "index.json").unlink()
    with pytest.warns(UserWarning, match=runs[0].id):
        assert store.list_runs(newest_first=False) == runs[1:]
    with pytest.raises(StoreError, match="not valid JSON"):
        store.get_run(runs[0].id)


# -- file names -----------------------------------------------------------------------------------
def test_run_ids_must_be_safe_file_names(kind: str, tmp_path: Path) -> None:
    store = open_store(url_of(kind, tmp_path / "store"))
    for bad in ("../escape", "a/b", ".hidden", "index", "", "x" * 200):
        with pytest.raises(ValidationError):
            store.create_run(RunRecord(id=bad, name="x"))
        with pytest.raises(RunNotFound):
            store.get_run(bad)
    assert store.count_runs() == 0
    assert not list(tmp_path.glob("escape*"))


def test_any_step_name_gets_its_own_file(tmp_path: Path) -> None:
    store = open_store(url_of("chunked", tmp_path))
    run = store.create_run(make_run())
    long = "x" * 1000
    names = ["a", "a-1", "a-1-2", "../up", "with space/and?", "é✓", long, long + "y", "%hx"]
    for i, name in enumerate(names):
        store.upsert_step(run.id, Step(name, created=float(i)))
    assert [s.name for s in store.get_steps(run.id)] == names
    for name in names:
        assert store.get_step(run.id, name).name == name
    assert len(list((tmp_path / run.id).glob("StepLog-*.json"))) == len(names)


def test_values_json_cannot_hold_are_refused_and_change_nothing(kind: str, tmp_path: Path) -> None:
    store = open_store(url_of(kind, tmp_path))
    run = store.create_run(make_run(metadata={"a": 1}))
    with pytest.raises(ValidationError):
        store.merge_metadata(run.id, {"b": object()})
    assert store.get_run(run.id) == run


# -- child processes ------------------------------------------------------------------------------
def main(role: str, url: str, *args: str) -> None:
    store = open_store(url)
    if role == "hammer":
        hammer(store, args[0], int(args[1]), int(args[2]))
    elif role == "churn":
        churn(store, args[0], int(args[1]))
    elif role == "claim":
        print(json.dumps(claim(store, int(args[0]))))


if __name__ == "__main__":
    main(*sys.argv[1:])
