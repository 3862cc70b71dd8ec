"""A workflow run's internals (DAG, plan, results, counts) are kept apart from the user's
metadata, in every backend, also in stores and run logs written before they were; and
``get_results`` says so, rather than wait, when the run has not ended (``wait=True`` waits)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import wf_defs
from runyard import WorkflowRun, task, workflow
from runyard.errors import WorkflowNotFinished
from runyard.model import Status
from runyard.stores import open_store

INTERNAL = ("workflow", "dag_hash", "dag", "plan", "results", "task_runs")


def test_user_metadata_cannot_break_a_workflow_run(store_url: str) -> None:
    store = open_store(store_url)
    run = wf_defs.chain(4).run(store=store)
    assert run.get_results(wait=True, timeout=120) == 6
    record = store.get_run(run.run_id)
    assert set(INTERNAL) <= set(record.internals) and not set(INTERNAL) & set(record.metadata)
    assert "plan" not in record.config
    spoiled = {key: {"blob": "0" * 64, "call": "!", "inline": "?"} for key in INTERNAL}
    store.merge_metadata(run.run_id, {**spoiled, "internals": "x"})
    again = WorkflowRun.by_id(run.run_id, store)
    assert again.get_results() == 6
    assert len(again.get_dag()["nodes"]) == 4
    assert again.rerun().get_results(wait=True, timeout=120) == 6
    assert store.get_run(run.run_id).metadata["dag"] == spoiled["dag"]


def test_run_show_lists_internals_in_their_own_section(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runyard.db"
    run = wf_defs.chain(2).run(store=url)
    run.get_results(wait=True, timeout=120)
    open_store(url).merge_metadata(run.run_id, {"team": "blue"})
    shown = _cli(tmp_path, "--store", url, "run", "show", run.run_id).stdout
    metadata, _, internals = shown.partition("internals")
    assert "team" in metadata and "dag_hash" not in metadata
    assert "dag_hash" in internals and "task_runs" in internals and "team" not in internals


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


# -- stores written before runs had internals --------------------------------------------------
def _as_before(doc: dict[str, Any]) -> dict[str, Any]:
    """A run's dict as an older runyard wrote it: internals in the metadata, plan in config."""
    internals = doc.pop("internals")
    doc["config"] = {**doc["config"], "plan": internals.pop("plan")}
    doc["metadata"] = {**doc["metadata"], **internals}
    return doc


@pytest.mark.parametrize("kind", ["file", "chunked"])
def test_an_older_run_log_is_read_with_its_internals(kind: str, tmp_path: Path) -> None:
    url = f"{kind}://{tmp_path}/store"
    run = wf_defs.chain(3).run(store=url)
    run.get_results(wait=True, timeout=120)
    before = open_store(url).get_run(run.run_id)
    root = tmp_path / "store"
    path = root / f"{run.run_id}.json" if kind == "file" else root / run.run_id / "RunLog.json"
    data = json.loads(path.read_text())
    if kind == "file":
        data["run"] = _as_before(data["run"])
    else:
        data = _as_before(data)
    assert "dag" in json.dumps(data) and '"internals"' not in json.dumps(data)
    path.write_text(json.dumps(data))
    opened = open_store(url)
    assert opened.get_run(run.run_id) == before
    opened.merge_metadata(run.run_id, {"dag": "mine"})
    assert WorkflowRun.by_id(run.run_id, opened).get_results() == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_older_sql_store_is_upgraded(backend: str, tmp_path: Path,
                                        request: pytest.FixtureRequest,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.stores.postgres import PostgresStore
    from runyard.stores.sqlite import SqliteStore

    monkeypatch.setenv("RUNYARD_BLOBS", str(tmp_path / "blobs"))

    where = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    url = f"sqlite://{where}" if backend == "sqlite" else where
    run = wf_defs.chain(3).run(store=url)
    run.get_results(wait=True, timeout=120)
    tracked = open_store(url).create_run(
        open_store(url).get_run(run.run_id).replace(id="0" * 26, name="tracked-1",
                                                    kind="tracked", internals={},
                                                    metadata={"dag": "mine"}))
    before = open_store(url).get_run(run.run_id)
    open_store(url).close()
    _downgrade(backend, where)
    store = SqliteStore(where) if backend == "sqlite" else PostgresStore(where)
    try:
        assert store.get_run(run.run_id) == before
        assert store.get_run(tracked.id).metadata == {"dag": "mine"}  # not a workflow's
        assert store.get_run(tracked.id).internals == {}
        store.merge_metadata(run.run_id, {"results": None})
        assert WorkflowRun.by_id(run.run_id, store).get_results() == 3
    finally:
        store.close()


def _downgrade(backend: str, where: str) -> None:
    """Make the store one of schema version 3: no ``internals`` column, a workflow run's
    internals in its metadata and its plan in its config."""
    if backend == "sqlite":
        conn = sqlite3.connect(where)
        with conn:
            _rewrite(lambda sql, p=(): conn.execute(sql, p).fetchall(), json.loads, "?")
        conn.close()
        return
    import psycopg

    with psycopg.connect(where) as pg, pg.transaction(), pg.cursor() as cursor:
        def execute(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

        _rewrite(execute, lambda v: v, "%s::json")


def _rewrite(execute: Any, load: Any, param: str) -> None:
    mark = param.replace("::json", "")
    rows = execute("SELECT id, metadata, config, internals FROM runs")
    for run_id, *docs in rows:
        metadata, config, internals = (load(d) for d in docs)
        if internals:
            old = _as_before({"metadata": metadata, "config": config, "internals": internals})
            execute(f"UPDATE runs SET metadata = {param}, config = {param} WHERE id = {mark}",
                    (json.dumps(old["metadata"]), json.dumps(old["config"]), run_id))
    execute("ALTER TABLE runs DROP COLUMN internals")
    execute("UPDATE runyard_schema SET version = 3")


# -- get_results before the end ---------------------------------------------------------------
def test_get_results_before_the_end_raises_and_wait_blocks(store_url: str) -> None:
    gate = threading.Event()

    @task
    def held() -> str:
        gate.wait(120)
        return "released"

    @workflow
    def gated() -> object:
        return held()

    store = open_store(store_url)
    run = gated().run(store=store)
    with pytest.raises(WorkflowNotFinished, match=r"is running.*get_results\(wait=True\)"):
        run.get_results()
    elsewhere = WorkflowRun.by_id(run.run_id, store)  # follows the store, not the execution
    with pytest.raises(WorkflowNotFinished, match="is running"):
        elsewhere.get_results()
    with pytest.raises(WorkflowNotFinished, match=r"still running after 0\.1s"):
        elsewhere.get_results(wait=True, timeout=0.1)
    threading.Timer(0.3, gate.set).start()
    assert elsewhere.get_results(wait=True) == "released"
    assert run.get_results() == "released" and run.get_status() is Status.SUCCEEDED


def test_a_prepared_run_has_no_results_yet(store_url: str) -> None:
    run = wf_defs.chain(2).prepare(store=store_url)
    with pytest.raises(WorkflowNotFinished, match=r"is created.*start"):
        run.get_results()
    with pytest.raises(WorkflowNotFinished, match="is created"):
        run.get_results(wait=True, timeout=0.1)
    assert run.start().get_results(wait=True) == 1
