"""``WorkflowRun``: one run of a workflow, followed from any process through the store.

Only the store and the run id are needed (``by_id``). In the process that executes the run
(``in_process`` and ``ray``), waiting uses the execution's own event; anywhere else it reads the
store every ``POLL_S`` seconds (a fraction of a second). Reading the status checks the owner's
liveness first, so a run whose supervisor died reads as ``lost``.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from runyard.core.context import context_of
from runyard.engine.config import RuntimeConfiguration, resolve
from runyard.engine.execution import Execution, launch_detached, record_run
from runyard.engine.taskruns import TaskRun, task_runs
from runyard.engine.values import Value
from runyard.errors import (
    ConflictError,
    ValidationError,
    WorkflowFailed,
    WorkflowNotFinished,
)
from runyard.model import Artifact, Kind, LogLine, RunRecord, Status
from runyard.stores import RunStore, open_store

if TYPE_CHECKING:
    from runyard.engine.workflow import WorkflowPlan

POLL_S = 0.05


def _open(store: RunStore | str | None) -> RunStore:
    return store if store is not None and not isinstance(store, str) else open_store(store)


class WorkflowRun:
    def __init__(self, run_id: str, store: RunStore, *, plan: WorkflowPlan | None = None,
                 config: RuntimeConfiguration | None = None) -> None:
        self.run_id, self.store = run_id, store
        self._plan, self._config = plan, config
        self._execution: Execution | None = None

    def __repr__(self) -> str:
        return f"WorkflowRun({self.run_id!r})"

    # -- making and finding runs ------------------------------------------------------------
    @classmethod
    def prepare(cls, plan: WorkflowPlan, config: str | RuntimeConfiguration | None = None, *,
                store: RunStore | str | None = None, origin: str | None = None,
                extra: dict[str, Any] | None = None, **fields: Any) -> WorkflowRun:
        chosen = resolve(config)
        opened = _open(chosen.store_url if store is None else store)
        if chosen.runtime != "in_process":
            _check_portable(plan, chosen)
        run = record_run(opened, plan, chosen, origin=origin, extra=extra, **fields)
        return cls(run.id, opened, plan=plan, config=chosen)

    @classmethod
    def launch(cls, plan: WorkflowPlan, config: str | RuntimeConfiguration | None = None, *,
               store: RunStore | str | None = None, **fields: Any) -> WorkflowRun:
        """Record a run of ``plan`` and start it (here: created already running, in one write)."""
        chosen = resolve(config)
        if chosen.detached:
            return cls.prepare(plan, chosen, store=store, **fields).start()
        opened = _open(chosen.store_url if store is None else store)
        if chosen.runtime != "in_process":
            _check_portable(plan, chosen)
        run = record_run(opened, plan, chosen, running=True, **fields)
        made = cls(run.id, opened, plan=plan, config=chosen)
        made._execution = Execution(opened, run, plan, chosen)
        made._execution.start(owned=True)
        return made

    @classmethod
    def by_id(cls, run_id: str, store: RunStore | str | None = None) -> WorkflowRun:
        """The workflow run ``run_id`` (or name) of ``store`` (default: the configured one)."""
        opened = _open(store)
        run = opened.find_run(run_id)
        if run.kind is not Kind.WORKFLOW:
            raise ValidationError(f"run {run.id} is a {run.kind.value} run, not a workflow run")
        return cls(run.id, opened)

    @property
    def run(self) -> RunRecord:
        """The run record as it is now (lost if its owner died)."""
        from runyard.core.liveness import refresh

        return refresh(self.store, self.store.get_run(self.run_id))

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> WorkflowRun:
        """Start a prepared run (in this process, or under a detached supervisor)."""
        run = self.store.get_run(self.run_id)
        if run.status is not Status.CREATED:
            raise ConflictError(f"run {self.run_id} is {run.status.value}; only a created run "
                                "can start (re-run it instead)")
        config = self._config or resolve(run.config.get("runtime_name"))
        if config.detached:
            launch_detached(self.store, run)
            return self
        from runyard.engine.workflow import load_plan

        plan = self._plan or load_plan(run.internals["plan"], context_of(self.store).blobs)
        self._execution = Execution(self.store, run, plan, config)
        self._execution.start()
        return self

    def cancel(self) -> Status:
        """Ask the run to stop: no new task runs start; it ends ``canceled``."""
        run = self.run
        if run.status is Status.CREATED:
            return self.store.update_status(self.run_id, Status.CANCELED, "canceled").status
        if run.status is Status.RUNNING:
            with contextlib.suppress(ConflictError):
                self.store.update_status(self.run_id, Status.CANCELING, "cancel requested",
                                         expect=Status.RUNNING)
            if self._execution is not None:
                self._execution.cancel()
        return self.run.status

    def rerun(self, config: str | RuntimeConfiguration | None = None) -> WorkflowRun:
        """A new run of this run's workflow, reusing unchanged task runs (see ``rerun``)."""
        from runyard.engine.rerun import rerun

        return rerun(self, config)

    # -- reading ----------------------------------------------------------------------------
    def get_status(self) -> Status:
        return self.run.status

    def wait(self, timeout: float | None = None) -> Status:
        """Wait until the run is no longer active (or ``timeout`` passes); its status."""
        if self._execution is not None:
            self._execution.finished.wait(timeout)
            final = self._execution.final
            return final.status if final is not None else self.get_status()
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.get_status()).is_active:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        return status

    def get_results(self, wait: bool = False, timeout: float | None = None) -> Any:
        """The workflow's result, as Orquestra's ``WorkflowRun.get_results`` gives it: a run
        that has not ended raises ``WorkflowNotFinished`` at once, unless ``wait=True``, which
        waits for the end (at most ``timeout`` seconds); one that failed, was canceled or
        lost raises ``WorkflowFailed``."""
        status = self.get_status()
        if status is Status.CREATED:
            raise WorkflowNotFinished(f"run {self.run_id} is created: it has not started; "
                                      "call start() first (or run() the workflow)")
        if wait and status.is_active:
            status = self.wait(timeout)
        if status.is_active:
            if wait:
                raise WorkflowNotFinished(f"run {self.run_id} is still {status.value} after "
                                          f"{timeout}s; wait longer or without a timeout")
            raise WorkflowNotFinished(f"run {self.run_id} is {status.value}: it has not "
                                      "ended; call get_results(wait=True) to wait for it")
        final = self._execution.final if self._execution is not None else None
        run = final if final is not None and final.status is status else self.run
        if status is not Status.SUCCEEDED:
            raise WorkflowFailed(f"run {self.run_id} {status.value}: "
                                 f"{run.status_reason or 'no reason recorded'}")
        if self._execution is not None and self._execution.result is not None:
            return self._execution.result.load(None)
        return Value.from_doc(run.internals["results"]).load(context_of(self.store).blobs)

    def get_task_runs(self) -> list[TaskRun]:
        return task_runs(self.store, self.run_id)

    def get_logs(self, task_run: str | None = None) -> dict[str, list[LogLine]]:
        """Captured stdout/stderr lines by task run (just ``task_run``'s when given)."""
        found: dict[str, list[LogLine]] = {}
        for line in self.store.read_logs(self.run_id, step=task_run):
            found.setdefault(line.step or "", []).append(line)
        return found

    def get_dag(self) -> dict[str, Any]:
        """The run's DAG: ``{"hash", "tasks": {task: definition hash}, "nodes": [{"id",
        "task", "key", "deps"}, ...]}``, nodes in the order the workflow invoked them."""
        from runyard.engine.workflow import dag_doc

        internals = self.store.get_run(self.run_id).internals
        return dag_doc(internals.get("dag", {}), context_of(self.store).blobs)

    def get_artifacts(self) -> list[Artifact]:
        return self.store.list_artifacts(self.run_id)


def _check_portable(plan: WorkflowPlan, config: RuntimeConfiguration) -> None:
    """Every constant argument must pickle for a runtime in other processes."""
    for node in plan.dag.nodes.values():
        for name, param in node.params.items():
            if isinstance(param, Value) and param.digest is None:
                raise ValidationError(
                    f"argument {name!r} of task run {node.id} ({param.text}) does not pickle, "
                    f"so it cannot be sent to the {config.runtime} runtime; pass plain data "
                    "or use in_process"
                )

