"""Re-running a workflow run: a new run whose ``origin`` is the old one.

The workflow is traced again with the current code (or, when it cannot be imported, rebuilt
from the old run's pickled plan), the new DAG is compared with the old one and the difference
recorded in the new run's internals (``rerun``) and reported. While it executes, each task run
whose task definition and input digests match a task run that succeeded in the old run is
reused instead of executed (recorded with ``reused_from``), so only what changed, and what
depends on it, runs again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runyard.core.context import context_of
from runyard.engine.config import RuntimeConfiguration, resolve
from runyard.engine.dag import compare
from runyard.engine.workflow import dag_doc, load_plan

if TYPE_CHECKING:
    from runyard.engine.run import WorkflowRun


def rerun(old: WorkflowRun, config: str | RuntimeConfiguration | None = None) -> WorkflowRun:
    from runyard.engine.run import WorkflowRun

    run = old.store.get_run(old.run_id)
    blobs = context_of(old.store).blobs
    plan = load_plan(run.internals["plan"], blobs)
    change = compare(dag_doc(run.internals.get("dag", {}), blobs), plan.dag)
    chosen = resolve(config if config is not None else run.config.get("runtime_name"))
    extra = {"rerun": {"origin": run.id, "dag_changed": not change.same,
                       "changed": list(change.changed), "unchanged": len(change.kept),
                       "removed": change.removed, "summary": change.summary()}}
    new = WorkflowRun.prepare(plan, chosen, store=old.store, origin=run.id, extra=extra,
                              folder=run.folder)
    return new.start()
