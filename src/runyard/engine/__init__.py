"""Workflows: the ``@task`` / ``@workflow`` DSL, workflow runs, and runtime configurations.

    from runyard import task, workflow, WorkflowRun, RuntimeConfiguration

A workflow call is traced into a DAG of task runs (``dsl``, ``dag``); ``WorkflowRun`` (``run``)
records it as a run of kind ``workflow`` and executes it (``execution``, ``driver``) on the
runtime a ``RuntimeConfiguration`` (``config``) names, here or under a detached supervisor.
The local Ray clusters that ``ray`` runs leave up are listed and stopped with ``rayclusters``.
"""

from __future__ import annotations

# The DSL is imported here (``workflow`` is also the name of its module, so it must be bound
# now); the rest when first asked for: ``from runyard import task, workflow`` (what a workflow
# file needs to be defined) leaves the run machinery, the stores and the runtimes to the first
# run (issue 16).
from runyard.engine.dsl import TaskDef, task
from runyard.engine.workflow import WorkflowDef, WorkflowPlan, workflow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runyard.engine.config import RuntimeConfiguration
    from runyard.engine.rayclusters import (
        RayCluster,
        ray_clusters,
        stop_ray_cluster,
        stop_ray_clusters,
    )
    from runyard.engine.run import WorkflowRun
    from runyard.engine.taskruns import TaskRun

_HOME = {
    "RuntimeConfiguration": "config",
    "RayCluster": "rayclusters", "ray_clusters": "rayclusters",
    "stop_ray_cluster": "rayclusters", "stop_ray_clusters": "rayclusters",
    "WorkflowRun": "run", "TaskRun": "taskruns",
}

__all__ = [
    "RayCluster",
    "RuntimeConfiguration",
    "TaskDef",
    "TaskRun",
    "WorkflowDef",
    "WorkflowPlan",
    "WorkflowRun",
    "ray_clusters",
    "stop_ray_cluster",
    "stop_ray_clusters",
    "task",
    "workflow",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'runyard.engine' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"runyard.engine.{home}"), name)
