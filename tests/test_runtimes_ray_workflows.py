"""Workflows on the ``ray`` runtime, on the session's real local Ray cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import wf_chain_defs
import wf_defs
from runyard import RuntimeConfiguration, workflow
from runyard.errors import ValidationError
from runyard.model import Status


@pytest.fixture
def ray_config(ray_cluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> RuntimeConfiguration:
    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return RuntimeConfiguration.ray(address=ray_cluster.address)  # type: ignore[attr-defined]


def test_fan_out_on_ray(ray_config: RuntimeConfiguration, tmp_path: Path) -> None:
    run = wf_defs.fan(20).run(ray_config, store=f"sqlite://{tmp_path}/r.db")
    assert run.get_results(wait=True, timeout=240) == sum(range(1, 21))
    assert len(run.get_task_runs()) == 21
    assert [line.text for line in run.get_logs("add-3")["add-3"]] == ["adding 2 and 1"]


def test_retries_and_failures_on_ray(ray_config: RuntimeConfiguration, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = f"sqlite://{tmp_path}/r.db"
    run = wf_defs.flaky_flow(str(tmp_path / "m")).run(ray_config, store=store)
    assert run.get_results(wait=True, timeout=240) == "ok after 3"
    monkeypatch.setenv("WF_FAILURE_NOTE", str(tmp_path / "note"))
    failed = wf_defs.failing(1).run(ray_config, store=store)
    assert failed.wait(240) is Status.FAILED
    assert "ValueError: cannot handle 2" in (failed.run.status_reason or "")
    assert "scale-1" not in {t.name for t in failed.get_task_runs()}


def test_task_runs_after_a_retried_one_run_once_on_the_final_result(
        ray_config: RuntimeConfiguration, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    run = wf_chain_defs.flaky_then_notes(str(tmp_path / "m"), str(folder)).run(
        ray_config, store=f"sqlite://{tmp_path}/r.db")
    assert run.get_results(wait=True, timeout=240) == "ok after 3!!!"
    ran = sorted(p.name.rsplit("-", 1)[0] for p in folder.iterdir())
    assert ran == ["ran-ok_after_3", "ran-ok_after_3!", "ran-ok_after_3!!"]
    attempts = {t.name: len(t.attempts) for t in run.get_task_runs()}
    assert attempts == {"flaky-1": 3, "note-1": 1, "note-2": 1, "note-3": 1}


def test_a_canceled_chain_on_ray_runs_no_task_run_after_the_running_one(
        ray_config: RuntimeConfiguration, tmp_path: Path) -> None:
    folder = tmp_path / "gate"
    folder.mkdir()
    run = wf_chain_defs.gated_then_note(str(folder)).run(
        ray_config, store=f"sqlite://{tmp_path}/r.db")
    deadline = time.monotonic() + 240
    while not (folder / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.cancel()
    (folder / "gate").touch()
    assert run.wait(240) is Status.CANCELED
    time.sleep(2)  # a task run submitted ahead would have run by now
    assert sorted(p.name for p in folder.iterdir()) == ["gate", "started"]  # no note
    assert [t.name for t in run.get_task_runs()] == ["gated-1"]


def test_ray_runs_a_call_submitted_after_another_on_its_result(ray_cluster: object) -> None:
    from runyard.runtimes.ray import RayRuntime

    answers: dict[str, tuple[object, BaseException | None]] = {}
    both = threading.Event()

    def keep(label: str) -> object:
        def done(result: object, error: BaseException | None) -> None:
            answers[label] = (result, error)
            if len(answers) == 2:
                both.set()
        return done

    with RayRuntime(cluster=ray_cluster) as runtime:  # type: ignore[arg-type]
        first = runtime.submit_then(pow, (3, 2), lambda result, error: None)
        after = runtime.submit_after(wf_chain_defs.plus_one, (10,), first)
        failing = runtime.submit_then(wf_chain_defs.boom, (), lambda result, error: None)
        skipped = runtime.submit_after(wf_chain_defs.plus_one, (10,), failing)
        runtime.answer_when(after, keep("after"))  # type: ignore[arg-type]
        runtime.answer_when(skipped, keep("skipped"))  # type: ignore[arg-type]
        assert both.wait(240)
    assert answers["after"] == (20, None)
    result, error = answers["skipped"]
    assert result is None and "boom" in str(error)


def test_large_values_on_ray(ray_config: RuntimeConfiguration, tmp_path: Path) -> None:
    run = wf_defs.big_flow(300_000).run(ray_config, store=f"sqlite://{tmp_path}/r.db")
    assert run.get_results(wait=True, timeout=240) == 300_000
    assert [a.name for a in run.get_artifacts()] == ["big-1/result"]


def test_unpicklable_arguments_are_refused_for_ray(ray_config: RuntimeConfiguration,
                                                   tmp_path: Path) -> None:
    @workflow
    def locked() -> object:
        return wf_defs.total(threading.Lock())

    with pytest.raises(ValidationError, match="cannot be sent to the ray runtime"):
        locked().run(ray_config, store=f"sqlite://{tmp_path}/r.db")


def _die() -> None:
    import os

    os._exit(3)


def test_a_dead_worker_fails_its_call_and_the_others_are_answered(ray_cluster: object) -> None:
    from runyard.runtimes.ray import RayRuntime

    answers: dict[str, tuple[object, BaseException | None]] = {}
    all_in = threading.Event()

    def keep(label: str) -> object:
        def done(result: object, error: BaseException | None) -> None:
            answers[label] = (result, error)
            if len(answers) == 5:
                all_in.set()
        return done

    with RayRuntime(cluster=ray_cluster) as runtime:  # type: ignore[arg-type]
        runtime.submit_then(_die, (), keep("dead"))  # type: ignore[arg-type]
        for i in range(4):
            runtime.submit_then(pow, (i, 2), keep(f"pow-{i}"))  # type: ignore[arg-type]
        assert all_in.wait(240)
    assert {k: v for k, v in answers.items() if k != "dead"} == {
        f"pow-{i}": (i * i, None) for i in range(4)}
    result, error = answers["dead"]
    assert result is None and error is not None
