"""Workflows on the ``ray`` runtime, on the session's real local Ray cluster."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

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
