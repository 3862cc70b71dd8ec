"""Workflows: the ``@task`` / ``@workflow`` DSL, workflow runs, and runtime configurations.

    from runyard import task, workflow, WorkflowRun, RuntimeConfiguration

A workflow call is traced into a DAG of task runs (``dsl``, ``dag``); ``WorkflowRun`` (``run``)
records it as a run of kind ``workflow`` and executes it (``execution``, ``driver``) on the
runtime a ``RuntimeConfiguration`` (``config``) names, here or under a detached supervisor.
The local Ray clusters that ``ray`` runs leave up are listed and stopped with ``rayclusters``.
"""

from runyard.engine.config import RuntimeConfiguration
from runyard.engine.dsl import TaskDef, task
from runyard.engine.rayclusters import (
    RayCluster,
    ray_clusters,
    stop_ray_cluster,
    stop_ray_clusters,
)
from runyard.engine.run import WorkflowRun
from runyard.engine.taskruns import TaskRun
from runyard.engine.workflow import WorkflowDef, WorkflowPlan, workflow

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
