"""The local Ray cluster a ``ray`` configuration leaves up: started ahead of a run, reused by
the run, listed and stopped with a public call and the CLI; only runyard's own cluster is
stopped, never a process that took over a recorded pid (and never with ``ray stop``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wf_defs
from runyard import RuntimeConfiguration
from runyard.engine import ray_clusters, stop_ray_cluster, stop_ray_clusters
from runyard.errors import ValidationError

PORT = 45650  # apart from the session cluster's (tests/ray_cluster.py) and the default


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "config"
    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    return home


def runyard(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNYARD_CONFIG_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-m", "runyard", *args], env=env, text=True,
                          capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.xdist_group("ray")
def test_start_ahead_list_reuse_and_stop(config_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import psutil

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    port = PORT + 300 * (int(worker) if worker.isdigit() else 0)
    RuntimeConfiguration.ray(port=port, num_cpus=1, name="mine").save()
    try:
        address = runyard(config_home, "ray", "start", "mine").stdout.strip()
        assert address == f"127.0.0.1:{port}"
        [cluster] = ray_clusters()
        assert (cluster.name, cluster.address, cluster.running) == ("mine", address, True)
        head = cluster.pid
        run = wf_defs.chain(3).run("mine", store=f"sqlite://{tmp_path}/r.db")
        assert run.get_results(wait=True, timeout=240) == 3
        import ray  # on loopback, both the node and this driver's way to it

        assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
        assert ray.get_runtime_context().gcs_address == address
        assert RuntimeConfiguration.load("mine").start() == address  # the same one, reused
        assert [c.pid for c in ray_clusters()] == [head]
        listed = json.loads(runyard(config_home, "ray", "list", "--json").stdout)
        assert [(c["name"], c["pid"], c["running"]) for c in listed] == [("mine", head, True)]
        stopped = runyard(config_home, "ray", "stop", "mine")
        assert "stopped: mine" in stopped.stderr
        deadline = time.monotonic() + 30
        while psutil.pid_exists(head) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(head) or psutil.Process(head).status() == "zombie"
        assert ray_clusters() == []
        assert json.loads(runyard(config_home, "ray", "list", "--json").stdout) == []
        assert "no cluster was running" in runyard(config_home, "ray", "stop", "mine").stderr
    finally:
        stop_ray_clusters()


def test_a_pid_taken_over_is_not_stopped(config_home: Path, tmp_path: Path) -> None:
    """A state file whose cluster died and whose pid now belongs to another process: listed
    as gone, and stopping it forgets it without signalling that process."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        folder = config_home / "ray"
        folder.mkdir(parents=True)
        temp_dir = tmp_path / "ry-gone"
        temp_dir.mkdir()
        (folder / "ray.json").write_text(json.dumps({
            "address": "127.0.0.1:29650", "pid": other.pid, "temp_dir": str(temp_dir),
            "started": 1.0}))
        [cluster] = ray_clusters()
        assert (cluster.name, cluster.pid, cluster.running) == ("ray", other.pid, False)
        assert stop_ray_cluster() is False
        assert other.poll() is None  # still running: never signalled
        assert ray_clusters() == [] and not (folder / "ray.json").exists()
    finally:
        other.kill()
        other.wait()


def test_only_ray_configurations_with_a_local_cluster_start(config_home: Path) -> None:
    assert RuntimeConfiguration.in_process().start() is None
    assert RuntimeConfiguration.ray(address="10.0.0.1:6379").start() is None
    with pytest.raises(ValidationError):
        stop_ray_cluster("../elsewhere")
    assert stop_ray_cluster("nothing-here") is False
