"""How the ``ray`` runtime connects: its tasks import what the driver imports, in the driver's
order, and the job brings no runtime env of its own, so the cluster's idle workers serve it at
once as they serve a plain Ray driver (a runtime env would have Ray start workers just for it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


def _probe() -> tuple[str, str]:
    """In the worker: the job's runtime env, and where ``ry_probe`` comes from."""
    import ray
    import ry_probe

    env: str = ray.get_runtime_context().get_runtime_env_string()  # type: ignore[no-untyped-call]
    return env, ry_probe.WHERE


def test_tasks_import_the_drivers_path_in_order_without_a_runtime_env(
        ray_cluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.runtimes.ray import RayRuntime, disconnect

    for name in ("first", "second"):  # the same module in two folders: the first one wins
        (tmp_path / name).mkdir()
        (tmp_path / name / "ry_probe.py").write_text(f"WHERE = {name!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))
    disconnect()  # a new connection, made with this sys.path
    with RayRuntime(cluster=ray_cluster) as runtime:  # type: ignore[arg-type]
        runtime_env, where = runtime.submit(_probe).result(timeout=240)
    assert where == "first"
    assert runtime_env in ("", "{}")
    sys.modules.pop("ry_probe", None)
