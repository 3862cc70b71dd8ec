"""runyard's own local Ray clusters: started ahead of a run, listed, and stopped.

A ``ray`` configuration without an address runs its task runs on a local cluster that the
first run starts and leaves up, so that later runs, from any process, reuse it instead of
waiting for another. Each such cluster is recorded in a state file named after its
configuration (``<config home>/ray/NAME.json``: address, pid, temp dir), and these calls work
from those files only: ``stop_ray_cluster`` signals the recorded pid while it is still that
cluster's ``ray start`` and then, by pid, its processes that linger. Nothing here runs
``ray stop`` (which would stop every Ray cluster of the machine's user) or touches a cluster
runyard did not start.

    from runyard.engine import ray_clusters, stop_ray_cluster
    RuntimeConfiguration.load("ray").start()   # the cluster is up before the first run
    [c.name for c in ray_clusters()]           # ['ray']
    stop_ray_cluster("ray")                    # True: it was running, and now is not
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runyard.engine.config import check_name
from runyard.stores.location import config_home


@dataclass(frozen=True)
class RayCluster:
    """One local cluster runyard started for the configuration ``name``."""

    name: str
    address: str
    pid: int
    running: bool  # its ``ray start`` is alive and its port answers
    started: float | None
    state_file: Path

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "address": self.address, "pid": self.pid,
                "running": self.running, "started": self.started}


def _folder() -> Path:
    return config_home() / "ray"


def ray_clusters() -> list[RayCluster]:
    """The local Ray clusters runyard has started and not stopped, by configuration name
    (one whose process has died is listed as not running until it is stopped)."""
    from runyard.runtimes.raycluster import LocalCluster

    found = []
    for state_file in sorted(_folder().glob("*.json")):
        cluster = LocalCluster.of_state(state_file)
        state = None if cluster is None else cluster.read_state()
        if cluster is None or state is None:
            continue
        found.append(RayCluster(state_file.stem, cluster.address, int(state.get("pid") or 0),
                                cluster.running(), state.get("started"), state_file))
    return found


def stop_ray_cluster(name: str = "ray") -> bool:
    """Stop the local cluster of the configuration ``name`` and forget it; whether it was
    running (``False`` also when there is none)."""
    from runyard.runtimes.raycluster import LocalCluster

    state_file = _folder() / f"{check_name(name)}.json"
    cluster = LocalCluster.of_state(state_file)
    if cluster is None:
        state_file.unlink(missing_ok=True)
        return False
    return cluster.stop()


def stop_ray_clusters() -> list[str]:
    """Stop every local cluster runyard has started; the names of those that were running."""
    return [c.name for c in ray_clusters() if stop_ray_cluster(c.name)]
