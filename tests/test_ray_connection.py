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


def _three() -> int:
    return 3


def test_a_local_cluster_listens_on_loopback_only(ray_cluster: object) -> None:
    """Runyard's local cluster runs without Ray's token auth: none of its processes (head,
    GCS, raylet, agents, workers) may take connections from another machine."""
    import psutil

    from runyard.runtimes.ray import RayRuntime

    with RayRuntime(cluster=ray_cluster) as runtime:  # type: ignore[arg-type]
        assert runtime.submit(_three).result(timeout=240) == 3  # workers up
    temp_dir = str(ray_cluster.read_state()["temp_dir"])  # type: ignore[attr-defined]
    listening = []
    for proc in psutil.process_iter(["cmdline"]):
        if temp_dir not in " ".join(proc.info["cmdline"] or ()):
            continue
        try:
            found = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening += [(proc.pid, c.laddr.ip) for c in found if c.status == psutil.CONN_LISTEN]
    assert listening  # the check saw the cluster's sockets
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for _, ip in listening), listening
