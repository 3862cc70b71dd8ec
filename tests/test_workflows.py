"""Workflows on the in_process runtime: tracing, results, the run log, retries, re-runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import wf_defs
from runyard import RuntimeConfiguration, WorkflowRun, task, workflow
from runyard.engine.dag import Dag, Node, Ref
from runyard.errors import (
    ConfigNotFound,
    WorkflowDefinitionError,
    WorkflowFailed,
    WorkflowNotFinished,
)
from runyard.model import Kind, Status
from runyard.stores import open_store


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return f"sqlite://{tmp_path}/store/runyard.db"


def test_chain_runs_and_is_recorded_as_a_workflow_run(store_url: str) -> None:
    run = wf_defs.chain(10).run("in_process", store=store_url)
    assert run.get_results(wait=True, timeout=60) == 45
    record = open_store(store_url).get_run(run.run_id)
    assert record.kind is Kind.WORKFLOW and record.status is Status.SUCCEEDED
    assert record.parameters == {"n": 10}
    assert record.internals["dag_hash"] == wf_defs.chain(10).dag.hash
    assert record.internals["dag"]["hash"] == record.internals["dag_hash"]
    assert record.internals["dag"]["task_runs"] == 10
    dag = run.get_dag()
    assert dag["hash"] == record.internals["dag_hash"] and len(dag["nodes"]) == 10
    assert [n["id"] for n in dag["nodes"]][:2] == ["add-1", "add-2"]
    assert dag["nodes"][1]["deps"] == ["add-1"] and "deps" not in dag["nodes"][0]
    assert dag == wf_defs.chain(10).dag.to_doc()
    runs = run.get_task_runs()
    assert len(runs) == 10 and all(t.status is Status.SUCCEEDED for t in runs)
    fourth = next(t for t in runs if t.name == "add-4")
    assert fourth.arguments == {"x": 3, "y": 3} and fourth.output == 6
    assert fourth.attempts[0].inputs == fourth.inputs and fourth.output_digest


def test_the_dag_document_is_stored_once_and_again_when_its_blob_is_gone(store_url: str
                                                                        ) -> None:
    first = wf_defs.chain(4).run(store=store_url)
    again = wf_defs.chain(4).run(store=store_url)
    store = open_store(store_url)
    blob = store.get_run(first.run_id).internals["dag"]["blob"]
    assert store.get_run(again.run_id).internals["dag"]["blob"] == blob
    from runyard.core.context import open_context

    blobs = open_context(store_url).blobs
    blobs.path(blob).unlink()
    third = wf_defs.chain(4).run(store=store_url)
    assert store.get_run(third.run_id).internals["dag"]["blob"] == blob and blobs.exists(blob)
    assert third.get_dag() == first.get_dag() == wf_defs.chain(4).dag.to_doc()


def test_the_dag_hash_covers_task_names() -> None:
    renamed = task(name="plus")(wf_defs.add.fn)

    @workflow
    def one(n: int) -> object:
        return wf_defs.add(n, 1)

    @workflow
    def other(n: int) -> object:
        return renamed(n, 1)

    first, second = one(1).dag, other(1).dag
    assert [n.key for n in first.nodes.values()] == [n.key for n in second.nodes.values()]
    assert first.hash != second.hash


def test_fan_out_with_a_list_of_results_and_by_id(store_url: str) -> None:
    run = wf_defs.fan(30).run(store=store_url)
    assert run.get_results(wait=True) == sum(range(1, 31))
    same = WorkflowRun.by_id(run.run_id, store=store_url)
    assert same.get_status() is Status.SUCCEEDED and same.get_results(wait=False) == 465
    reduce_run = next(t for t in same.get_task_runs() if t.task == "total")
    assert reduce_run.arguments == {"values": list(range(1, 31))}


@task
def echo(value: object) -> object:
    return value


@workflow
def gathered() -> object:
    a, b, c = (wf_defs.scale(i) for i in range(1, 4))
    return [echo(x) for x in ([a, b, c], (c, a), [a, a, b], [b, 7, c], {"k": (a, {c})})]


def test_arguments_holding_results_are_read_back_as_they_were_passed(store_url: str) -> None:
    expected = [[2, 4, 6], (6, 2), [2, 2, 4], [4, 7, 6], {"k": (2, {6})}]
    run = gathered().run(store=store_url)
    assert run.get_results(wait=True) == expected
    echoes = sorted((t for t in run.get_task_runs() if t.task == "echo"),
                    key=lambda t: int(t.name.rsplit("-", 1)[1]))
    assert [t.arguments["value"] for t in echoes] == expected
    shapes = [t.step.metadata["inputs"]["value"].get("shape") for t in echoes]
    assert shapes == ["list", "tuple", None, None, None]  # each result once, else a template
    again = run.rerun()  # the same arguments: every task run is reused
    assert again.get_results(wait=True) == expected
    assert all(t.reused_from for t in again.get_task_runs())


def test_results_may_be_structures_of_results(store_url: str) -> None:
    run = wf_defs.pair(3, 4).run(store=store_url)
    assert run.get_results(wait=True) == {"sum": 7, "scaled": 12}


def test_stdout_and_stderr_are_captured_per_task_run(store_url: str) -> None:
    run = wf_defs.chain(3).run(store=store_url)
    run.get_results(wait=True)
    logs = run.get_logs()
    assert [line.text for line in logs["add-2"]] == ["adding 0 and 1"]
    assert {line.stream for lines in logs.values() for line in lines} == {"stdout"}


def test_a_task_that_fails_twice_then_succeeds_has_three_attempts(store_url: str,
                                                                  tmp_path: Path) -> None:
    run = wf_defs.flaky_flow(str(tmp_path / "marker")).run(store=store_url)
    assert run.get_results(wait=True) == "ok after 3"
    (flaky,) = run.get_task_runs()
    assert [a.status for a in flaky.attempts] == [Status.FAILED, Status.FAILED, Status.SUCCEEDED]
    assert flaky.attempts[0].message == "RuntimeError: attempt 1 fails"


def test_a_task_that_always_fails_fails_the_run_and_runs_on_failure(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = tmp_path / "note.txt"
    monkeypatch.setenv("WF_FAILURE_NOTE", str(note))
    run = wf_defs.failing(1).run(store=store_url)
    with pytest.raises(WorkflowFailed, match="ValueError: cannot handle 2"):
        run.get_results(wait=True)
    record = run.run
    assert record.status is Status.FAILED
    assert record.status_reason == "task run broken-1 failed after 2 attempts: " \
                                   "ValueError: cannot handle 2"
    steps = {t.name: t for t in run.get_task_runs()}
    assert len(steps["broken-1"].attempts) == 2 and "scale-1" not in steps
    assert note.read_text() == "broken-1: ValueError: cannot handle 2"
    assert steps["record_failure-on-broken-1"].kind == "on_failure"
    assert any("Traceback" in line.text for line in run.get_logs("broken-1")["broken-1"])


def test_get_results_without_waiting_before_the_end_is_refused(store_url: str,
                                                               tmp_path: Path) -> None:
    gate = threading.Event()

    @task
    def held() -> int:
        gate.wait(60)
        return 1

    @workflow
    def waiting() -> object:
        return held()

    run = waiting().run(store=store_url)
    with pytest.raises(WorkflowNotFinished, match="get_results\\(wait=True\\)"):
        run.get_results(wait=False)
    with pytest.raises(WorkflowNotFinished):
        run.get_results(wait=True, timeout=0.05)
    gate.set()
    assert run.get_results(wait=True) == 1


def test_cancel_stops_new_task_runs(store_url: str) -> None:
    gate = threading.Event()

    @task
    def first() -> int:
        gate.wait(60)
        return 1

    @task
    def second(x: int) -> int:
        return x + 1

    @workflow
    def two() -> object:
        return second(first())

    run = two().run(store=store_url)
    run.cancel()
    gate.set()
    assert run.wait(60) is Status.CANCELED
    assert [t.name for t in run.get_task_runs()] == ["first-1"]


def test_prepare_records_without_starting(store_url: str) -> None:
    run = wf_defs.chain(2).prepare("in_process", store=store_url)
    assert run.get_status() is Status.CREATED
    assert run.start().get_results(wait=True) == 1


def test_rerun_reuses_unchanged_task_runs(store_url: str) -> None:
    first = wf_defs.fan(5).run(store=store_url)
    first.get_results(wait=True)
    again = first.rerun()
    assert again.get_results(wait=True) == first.get_results(wait=True)
    record = again.run
    assert record.origin == first.run_id and record.internals["rerun"]["dag_changed"] is False
    assert all(t.reused_from is not None for t in again.get_task_runs())
    assert record.internals["task_runs"] == {"executed": 0, "reused": 6}


def test_rerun_of_a_changed_dag_executes_only_the_changed_part(store_url: str) -> None:
    from runyard.engine.dag import compare

    old = wf_defs.chain(4)
    new = wf_defs.chain(5)
    change = compare(old.dag.to_doc(), new.dag)
    assert not change.same and change.changed == ("add-5",) and len(change.kept) == 4
    assert "1 task runs new or changed (add-5)" in change.summary()


def test_rerun_after_changing_a_constant_reports_it(store_url: str, tmp_path: Path) -> None:
    module = tmp_path / "wf_changing.py"
    module.write_text(_changing(1))
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.import_module("wf_changing")
        first = mod.flow().run(store=store_url)
        assert first.get_results(wait=True) == 12
        module.write_text(_changing(5))
        importlib.reload(mod)
        again = first.rerun()
        assert again.get_results(wait=True) == 24
        info = again.run.internals["rerun"]
        assert info["dag_changed"] is True and info["changed"] == ["inc-2", "mul-1"]
        reused = {t.name: t.reused_from is not None for t in again.get_task_runs()}
        assert reused == {"inc-1": True, "inc-2": False, "mul-1": False}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wf_changing", None)


def _changing(second: int) -> str:
    return (
        "from runyard import task, workflow\n"
        "@task\ndef inc(x, by):\n    return x + by\n"
        "@task\ndef mul(a, b):\n    return a * b\n"
        f"@workflow\ndef flow():\n    return mul(inc(2, 1), inc(3, {second}))\n"
    )


def test_large_values_travel_through_the_blob_store(store_url: str) -> None:
    run = wf_defs.big_flow(200_000).run(store=store_url)
    assert run.get_results(wait=True) == 200_000
    (artifact,) = run.get_artifacts()
    assert artifact.name == "big-1/result" and artifact.size > 200_000
    assert next(t for t in run.get_task_runs() if t.name == "big-1").output == b"x" * 200_000


def test_untraceable_use_of_a_result_is_a_clear_error() -> None:
    @workflow
    def bad(n: int) -> object:
        return wf_defs.add(1, 2) + n

    with pytest.raises(WorkflowDefinitionError, match="pass it to another @task") as info:
        bad(3)
    assert "\n" not in str(info.value)

    @workflow
    def calls_other(n: int) -> object:
        import math

        return math.sqrt(wf_defs.add(n, 1))

    with pytest.raises(WorkflowDefinitionError, match="add-1"):
        calls_other(2)


def test_empty_and_cyclic_workflows_are_refused() -> None:
    @workflow
    def empty() -> int:
        return 3

    with pytest.raises(WorkflowDefinitionError, match="invokes no task"):
        empty()
    a = Node("add-1", wf_defs.add, {"x": Ref("add-2"), "y": Ref("add-2")})
    b = Node("add-2", wf_defs.add, {"x": Ref("add-1"), "y": Ref("add-1")})
    with pytest.raises(WorkflowDefinitionError, match="cycle through task runs add-1, add-2"):
        Dag.build("loop", [a, b])


def test_a_wrong_task_call_is_refused() -> None:
    @workflow
    def wrong() -> object:
        return wf_defs.add(1)

    with pytest.raises(WorkflowDefinitionError, match="called wrongly"):
        wrong()


def test_unknown_config_is_a_clear_error(store_url: str) -> None:
    with pytest.raises(ConfigNotFound, match="no runtime configuration named 'nope'"):
        wf_defs.chain(2).run("nope", store=store_url)


def test_configs_are_saved_listed_loaded_and_deleted(store_url: str, tmp_path: Path) -> None:
    saved = RuntimeConfiguration.process(max_workers=3).save("local-pool")
    remote = RuntimeConfiguration.remote("ray://head.example:10001", "s3cret").save()
    assert remote.name == "ray-head.example-10001"
    names = [c.name for c in RuntimeConfiguration.list_configs()]
    assert names == ["in_process", "process", "ray", "local-pool", "ray-head.example-10001"]
    assert RuntimeConfiguration.load("local-pool") == saved
    assert (tmp_path / "config" / "runtimes.yaml").stat().st_mode & 0o077 == 0
    RuntimeConfiguration.delete("local-pool")
    with pytest.raises(ConfigNotFound):
        RuntimeConfiguration.load("local-pool")
    with pytest.raises(Exception, match="built-in"):
        RuntimeConfiguration.in_process().save()


def test_tasks_run_as_plain_functions_outside_workflows() -> None:
    assert wf_defs.add(2, 3) == 5
    assert wf_defs.add.max_attempts == 3 and wf_defs.add.name == "add"


def test_upsert_steps_writes_a_batch_on_every_backend(tmp_path: Path) -> None:
    from runyard.core.runs import create_run
    from runyard.model import Step

    for url in ("memory://batch", f"file://{tmp_path}/f", f"chunked://{tmp_path}/c",
                f"sqlite://{tmp_path}/s.db"):
        store = open_store(url)
        run = create_run(store)
        store.upsert_steps(run.id, [Step("a", created=1.0), Step("b", created=2.0)])
        store.upsert_steps(run.id, [Step("a", Status.SUCCEEDED, created=1.0)])
        assert [(s.name, s.status) for s in store.get_steps(run.id)] == [
            ("a", Status.SUCCEEDED), ("b", Status.CREATED)], url


def test_cli_runs_reruns_and_manages_configs(store_url: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from runyard.cli.main import main

    assert main(["--store", store_url, "workflow", "run", "wf_defs:chain", "--param", "n=4"]) == 0
    out = capsys.readouterr().out.split()
    run_id, result = out[0], out[1]
    assert result == "6"
    assert main(["--store", store_url, "run", "rerun", run_id]) == 0
    captured = capsys.readouterr()
    assert "the DAG is unchanged" in captured.err and captured.out.split()[1] == "6"
    assert main(["--store", store_url, "run", "show", captured.out.split()[0]]) == 0
    assert "reused from" in capsys.readouterr().out
    assert main(["config", "save", "pool", "--runtime", "process", "--max-workers", "2"]) == 0
    assert main(["config", "show", "pool", "--json"]) == 0
    assert '"max_workers": 2' in capsys.readouterr().out
    assert main(["--store", store_url, "workflow", "run", "wf_defs:chain", "--config",
                 "missing"]) == 3
    assert "no runtime configuration named 'missing'" in capsys.readouterr().err
    assert main(["workflow", "run", "wf_defs:add"]) == 2


@task
def kind_of(x: object) -> str:
    return type(x).__name__


@workflow
def kinds() -> object:
    return [kind_of(1), kind_of(True), kind_of(1), kind_of("1"), kind_of(None), kind_of(1.0)]


def test_equal_constants_of_different_classes_stay_apart(store_url: str) -> None:
    first = kinds()  # traced twice: the second tracing reuses constants encoded by the first
    assert kinds().dag.hash == first.dag.hash
    nodes = list(first.dag.nodes.values())
    assert nodes[0].params["x"] is nodes[2].params["x"]  # the same constant, encoded once
    assert nodes[0].key != nodes[1].key
    assert kinds().run("in_process", store=store_url).get_results(wait=True) == [
        "int", "bool", "int", "str", "NoneType", "float"]


def test_keys_made_while_tracing_are_the_keys_the_dag_makes() -> None:
    traced = gathered().dag  # results, constants and containers of results as arguments
    chained = wf_defs.chain(4).dag
    for dag in (traced, chained):
        again = Dag.build(dag.name, [Node(n.id, n.task, n.params) for n in dag.nodes.values()],
                          dag.result)
        assert [n.key for n in again.nodes.values()] == [n.key for n in dag.nodes.values()]
        assert [n.deps for n in again.nodes.values()] == [n.deps for n in dag.nodes.values()]
        assert again.hash == dag.hash


@task(max_attempts=2)
def held(marker: str, tries: str) -> str:
    """Fails its first attempt; the second runs until ``marker`` exists (at most a minute)."""
    if not Path(tries).exists():
        Path(tries).touch()
        raise ValueError("first try")
    deadline = time.monotonic() + 60
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


@workflow
def held_flow(marker: str, tries: str) -> object:
    return held(marker, tries)


@pytest.mark.parametrize("retried", [False, True])
def test_a_task_run_in_flight_is_recorded_running_then_finished(store_url: str, tmp_path: Path,
                                                                retried: bool) -> None:
    marker, tries = tmp_path / "release", tmp_path / "tries"
    if not retried:
        tries.touch()  # no failed first attempt: the one in flight is its first
    run = held_flow(str(marker), str(tries)).run(store=store_url)
    expected = [(1, Status.FAILED), (2, Status.RUNNING)] if retried else [(1, Status.RUNNING)]
    store, seen = open_store(store_url), None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # written once its attempt is in flight for a while
        steps = store.get_steps(run.run_id)
        if steps and len(steps[0].attempts) == len(expected):
            seen = steps[0]
            break
        time.sleep(0.05)
    assert seen is not None and seen.status is Status.RUNNING
    assert [(a.number, a.status) for a in seen.attempts] == expected
    assert seen.attempts[-1].started is not None and seen.attempts[-1].ended is None
    if retried:
        assert seen.attempts[0].message == "ValueError: first try"
    marker.touch()
    assert run.get_results(wait=True, timeout=60) == "released"
    final = store.get_steps(run.run_id)[0]
    assert final.status is Status.SUCCEEDED
    assert [(a.number, a.status) for a in final.attempts] == [
        *expected[:-1], (len(expected), Status.SUCCEEDED)]


def test_small_immutable_values_are_encoded_once_and_shared() -> None:
    import hashlib
    import pickle

    from runyard.engine.values import encode

    for value in (5, -(2**62), True, None, "ok", "é" * 80):
        first = encode(value)
        assert encode(value) is first and first.load(None) == value
        assert first.digest == hashlib.sha256(pickle.dumps(value, protocol=5)).hexdigest()
    assert encode(True) is not encode(1) and encode(True).digest != encode(1).digest
    for value in (2**70, 0.5, "x" * 81, b"b", [1]):  # made anew each time
        assert encode(value) is not encode(value) and encode(value).digest == encode(value).digest
