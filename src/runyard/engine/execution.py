"""Recording a workflow run, and executing it: here (``Execution``) or in a detached supervisor.

``record_run`` writes the run (kind ``workflow``, status ``created``) with everything needed to
rebuild and follow it: the parameters, the code identity and environment, the runtime
configuration, and in the run's ``internals`` (never in the user's metadata) the DAG and its
hash and the plan record; the results and task-run counts join them as the run ends.
``Execution`` runs it in this process: it moves the run to ``running`` owned by this process,
starts the runtime, the recorder and the driver, and a finisher thread that writes the final
status once the driver is done. ``launch_detached`` instead starts ``python -m
runyard.engine.detached`` in its own session and hands it the run: the run becomes
``running`` owned by the supervisor's pid at once, so if the supervisor dies the run is found
``lost`` by the next reader, never left ``running``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from runyard.core.context import context_of
from runyard.core.lease import Lease
from runyard.engine.config import RuntimeConfiguration
from runyard.engine.driver import Driver
from runyard.engine.recorder import HEARTBEAT_S, Recorder
from runyard.engine.reuse import ReuseIndex
from runyard.engine.values import Value
from runyard.engine.workflow import WorkflowPlan, dag_record, plan_record
from runyard.errors import ConflictError, RunyardError, WorkflowDefinitionError
from runyard.model import Artifact, Kind, RunRecord, Stage, Status
from runyard.runtimes import threads
from runyard.stores import RunStore


def record_run(store: RunStore, plan: WorkflowPlan, config: RuntimeConfiguration, *,
               name: str | None = None, folder: str = "/", tags: tuple[str, ...] = (),
               origin: str | None = None, extra: dict[str, Any] | None = None,
               running: bool = False) -> RunRecord:
    """Write the run (``created``; or, with ``running``, already running owned by us)."""
    from runyard.core.identity import code_identity, environment
    from runyard.core.liveness import this_owner
    from runyard.core.runs import create_run

    dag, blobs = plan.dag, context_of(store).blobs
    record = plan_record(plan, blobs)
    if config.detached and record.get("error"):
        raise WorkflowDefinitionError(str(record["error"]))
    internals = {"workflow": plan.definition.name, "dag_hash": dag.hash,
                 "dag": dag_record(dag, blobs), "plan": record, **(extra or {})}
    run_config = {"runtime": config.to_dict(redact=True), "runtime_name": config.name,
                  "heartbeat_interval": HEARTBEAT_S}
    live: dict[str, Any] = {}
    if running:
        live = {"status": Status.RUNNING, "owner": this_owner(), "heartbeat": time.time()}
    return create_run(store, name=name, folder=folder, kind=Kind.WORKFLOW, tags=tags,
                      internals=internals, parameters=plan.parameters, origin=origin,
                      code=code_identity(), environment=environment(), config=run_config,
                      **live)


class Execution:
    """One workflow run executing in this process."""

    def __init__(self, store: RunStore, run: RunRecord, plan: WorkflowPlan,
                 config: RuntimeConfiguration) -> None:
        self.store, self.run, self.plan, self.config = store, run, plan, config
        self.blobs = context_of(store).blobs
        self.result: Value | None = None
        self.final: RunRecord | None = None  # the run as this execution left it, once finished
        self.finished = threads.Latch()
        self.driver: Driver | None = None
        self.lease = Lease(store, run.id, heartbeat_s=HEARTBEAT_S)

    def start(self, owned: bool = False) -> None:
        """Take the run to ``running`` owned by this process (unless it is: ``owned``), then
        execute it."""
        if not owned:
            if self.store.get_run(self.run.id).status is Status.CREATED:
                self.store.update_status(self.run.id, Status.RUNNING, expect=Status.CREATED)
            self.lease.take()
        runtime = self.config.make_runtime()
        try:
            runtime.start()
        except RunyardError as exc:
            self._end(Status.FAILED, f"runtime {self.config.name} did not start: {exc}")
            raise
        # The recorder's thread also finishes the run: the driver stops it once done.
        recorder = Recorder(self.store, self.run.id, lease=self.lease, on_cancel=self.cancel,
                            then=lambda: self._finish(runtime, recorder))
        reuse = ReuseIndex.of_run(self.store, self.run.origin) if self.run.origin else None
        self.driver = Driver(self.plan.dag, runtime, recorder, self.blobs, reuse)
        self.driver.when_done = recorder.stop
        # The first task runs are submitted before the recorder's thread is started, so that
        # start (which waits for the new thread) overlaps with them; what the driver records
        # meanwhile is queued, and a run done before the thread starts is finished by it.
        try:
            self.driver.start()
        finally:
            recorder.start()

    def cancel(self) -> None:
        if self.driver is not None:
            self.driver.cancel()

    def _finish(self, runtime: Any, recorder: Recorder) -> None:
        driver = self.driver
        assert driver is not None
        driver.done.wait()
        status, reason = driver.outcome()
        summary: dict[str, Any] = {"task_runs": dict(driver.counts)}
        try:
            # Nothing is in flight once the driver is done: the in-process pool's threads
            # are idle and end by themselves, so only a remote runtime is waited for.
            runtime.shutdown(wait=status is Status.SUCCEEDED and runtime.remote)
            recorder.close()
            if status is Status.SUCCEEDED:
                self.result = driver.result_value()
                summary["results"] = self._result_doc(self.result)
        except RunyardError as exc:
            status, reason = Status.FAILED, f"could not record the run: {exc}"
        except Exception as exc:  # the run must end, whatever broke
            status, reason = Status.FAILED, f"{type(exc).__name__}: {exc}"
        self._end(status, reason, summary)

    def _result_doc(self, value: Value) -> dict[str, Any]:
        if value.in_blob and value.digest is not None:
            self.store.add_artifact(self.run.id, Artifact("result", value.digest, value.size,
                                                          Stage.PUT, time.time(), None,
                                                          "workflow-result"))
        return value.to_doc()

    def _end(self, status: Status, reason: str | None,
             summary: dict[str, Any] | None = None) -> None:
        """Write the final status through the run's lease, with the run's ``summary`` merged
        into its internals in the same write (a summary that cannot be stored fails the run,
        which still ends)."""
        try:
            self.final = self.lease.end(status, reason, internals=summary)
        except ConflictError:  # ended meanwhile, by someone else
            self.final = self.store.get_run(self.run.id)
        except RunyardError as exc:
            if summary is None:
                raise
            self.final = self.lease.end(Status.FAILED, f"could not record the run: {exc}")
        finally:
            self.finished.set()


def launch_detached(store: RunStore, run: RunRecord) -> int:
    """Start the supervisor of ``run`` and make it the run's owner; return its pid."""
    from runyard.processes.detach import python_argv, spawn_detached
    from runyard.processes.owners import owner_of

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    log = context_of(store).blob_root.parent / "supervisors" / f"{run.id}.log"
    argv = python_argv("runyard.engine.detached", store.url, run.id)
    pid = spawn_detached(argv, log, env=env, cwd=Path.cwd())
    store.update_status(run.id, Status.RUNNING, expect=Status.CREATED)
    store.update_run(run.id, owner=owner_of(pid), heartbeat=time.time())
    return pid
