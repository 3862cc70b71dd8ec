"""Workflows: the ``@task`` / ``@workflow`` DSL, workflow runs, and runtime configurations.

    from runyard import task, workflow, WorkflowRun, RuntimeConfiguration

A workflow call is traced into a DAG of task runs (``dsl``, ``dag``); ``WorkflowRun`` (``run``)
records it as a run of kind ``workflow`` and executes it (``execution``, ``driver``) on the
runtime a ``RuntimeConfiguration`` (``config``) names, here or under a detached supervisor.
"""

from runyard.engine.config import RuntimeConfiguration
from runyard.engine.dsl import TaskDef, task
from runyard.engine.run import WorkflowRun
from runyard.engine.taskruns import TaskRun
from runyard.engine.workflow import WorkflowDef, WorkflowPlan, workflow

__all__ = [
    "RuntimeConfiguration",
    "TaskDef",
    "TaskRun",
    "WorkflowDef",
    "WorkflowPlan",
    "WorkflowRun",
    "task",
    "workflow",
]
