"""``@workflow`` definitions, their traced calls (``WorkflowPlan``), and plans kept for later.

Calling a workflow traces it at once (so a bad workflow fails at the call, before any run is
created) and returns a ``WorkflowPlan``: ``prepare(config)`` records a run without starting it,
``run(config)`` records and starts one. A plan must be rebuilt in another process (the detached
supervisor, a re-run): when the workflow is importable by module and name it is traced again
there from the recorded call arguments; otherwise (defined in ``__main__``) the whole plan is
pickled by value into the blob store.
"""

from __future__ import annotations

import base64
import functools
import inspect
from collections.abc import Callable

from runyard.engine.dag import Dag
from runyard.engine.dsl import TaskDef, _lookup, trace
from runyard.engine.values import dumps, loads, short_repr
from runyard.errors import ValidationError, WorkflowDefinitionError

TYPE_CHECKING = False  # ``typing`` is not imported: ``from runyard import workflow`` skips it
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from runyard.blobs import BlobStore
    from runyard.engine.config import RuntimeConfiguration
    from runyard.engine.run import WorkflowRun
    from runyard.stores import RunStore


class WorkflowDef:
    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 on_failure: TaskDef | None = None) -> None:
        if not callable(fn):
            raise ValidationError(f"@workflow needs a function, not {type(fn).__name__}")
        if on_failure is not None and not isinstance(on_failure, TaskDef):
            raise ValidationError("on_failure must name a @task (it is called as a task run)")
        self.fn, self.on_failure = fn, on_failure
        self.name: str = name or str(getattr(fn, "__name__", "workflow"))
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The function's signature (made once: every call's parameters are bound to it)."""
        return inspect.signature(self.fn)

    @property
    def ref(self) -> str | None:
        """``module:qualname`` if importing that gives this workflow back (else ``None``)."""
        module = getattr(self.fn, "__module__", None)
        qualname = getattr(self.fn, "__qualname__", "")
        if module in (None, "__main__") or _lookup(module, qualname) is not self:
            return None
        return f"{module}:{qualname}"

    def __call__(self, *args: Any, **kwargs: Any) -> WorkflowPlan:
        dag = trace(self.name, self.fn, args, kwargs)
        dag.on_failure = self.on_failure
        return WorkflowPlan(self, dag, args, kwargs)


def workflow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             on_failure: TaskDef | None = None) -> Any:
    """Make ``fn`` a workflow: ``@workflow`` or ``@workflow(on_failure=notify)``."""
    def wrap(f: Callable[..., Any]) -> WorkflowDef:
        return WorkflowDef(f, name=name, on_failure=on_failure)

    return wrap if fn is None else wrap(fn)


class WorkflowPlan:
    """One traced call of a workflow: its DAG and the arguments it was called with."""

    def __init__(self, definition: WorkflowDef, dag: Dag, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.definition, self.dag, self.args, self.kwargs = definition, dag, args, kwargs

    def __repr__(self) -> str:
        return f"<plan of workflow {self.definition.name}: {len(self.dag.nodes)} task runs>"

    @property
    def parameters(self) -> dict[str, Any]:
        """The call's arguments by parameter name, shown as short text."""
        try:
            bound = self.definition.signature.bind(*self.args, **self.kwargs)
        except (TypeError, ValueError):
            return {f"arg{i}": short_repr(a) for i, a in enumerate(self.args)}
        return {k: _json_or_repr(v) for k, v in bound.arguments.items()}

    def prepare(self, config: str | RuntimeConfiguration | None = None, *,
                store: RunStore | str | None = None, name: str | None = None,
                folder: str = "/", tags: tuple[str, ...] = ()) -> WorkflowRun:
        """Record a run of this plan (status ``created``) without starting it."""
        from runyard.engine.run import WorkflowRun

        return WorkflowRun.prepare(self, config, store=store, name=name, folder=folder,
                                   tags=tags)

    def run(self, config: str | RuntimeConfiguration | None = None, **options: Any
            ) -> WorkflowRun:
        """Record a run of this plan and start it (``get_results(wait=True)`` waits for the
        end)."""
        from runyard.engine.run import WorkflowRun

        return WorkflowRun.launch(self, config, **options)


def _json_or_repr(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return short_repr(value)


def plan_record(plan: WorkflowPlan, blobs: BlobStore) -> dict[str, Any]:
    """What a run records so its plan can be rebuilt elsewhere (see the module docstring)."""
    ref = plan.definition.ref
    if ref is not None:
        call = dumps((plan.args, plan.kwargs))
        if call is not None and len(call) <= 256 * 1024:
            return {"workflow": ref, "call": base64.b64encode(call).decode()}
    data = dumps(plan)
    if data is None:
        return {"workflow": ref, "error": (
            f"workflow {plan.definition.name!r} or its tasks or arguments do not pickle, so "
            "the run cannot be re-run or started in another process; define them at module "
            "level and pass plain data")}
    return {"workflow": ref, "plan_blob": blobs.put_bytes(data).digest}


def dag_record(dag: Dag, blobs: BlobStore) -> dict[str, Any]:
    """What a run's internals ``dag`` holds: the DAG's hash, its number of task runs, and the
    digest of its document (``Dag.doc_json``) in the blob store. The document is stored once
    per distinct DAG, so the run record stays small however big the workflow is, and running
    the same workflow again writes nothing new."""
    digest = _DAG_BLOBS.get((blobs.root, dag.hash))  # the hash covers all the document holds
    if digest is None or not blobs.exists(digest):
        if len(_DAG_BLOBS) >= 1024:
            _DAG_BLOBS.clear()
        digest = _DAG_BLOBS[blobs.root, dag.hash] = blobs.put_bytes(dag.doc_json().encode()).digest
    return {"hash": dag.hash, "task_runs": len(dag.nodes), "blob": digest}


_DAG_BLOBS: dict[tuple[Path, str], str] = {}  # the digest of each DAG document stored, by hash


def dag_doc(record: dict[str, Any], blobs: BlobStore) -> dict[str, Any]:
    """The DAG document a run's internals ``dag`` names (runs of older versions hold it
    inline); ``{}`` when the run has none."""
    if "blob" not in record:
        return record
    import json

    doc: dict[str, Any] = json.loads(blobs.read_bytes(str(record["blob"])))
    return doc


def load_plan(record: dict[str, Any], blobs: BlobStore) -> WorkflowPlan:
    """The plan of a run, rebuilt from its ``plan_record`` (traced again when importable)."""
    if record.get("error"):
        raise WorkflowDefinitionError(str(record["error"]))
    if record.get("plan_blob"):
        plan = loads(blobs.read_bytes(str(record["plan_blob"])))
        assert isinstance(plan, WorkflowPlan)
        return plan
    module, _, qualname = str(record.get("workflow", "")).partition(":")
    try:
        definition = _lookup(module, qualname)
    except Exception as exc:  # the module fails as it is imported (a syntax error): user code
        raise WorkflowDefinitionError(
            f"cannot import workflow {record.get('workflow')!r} to rebuild the run: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(definition, WorkflowDef):
        raise WorkflowDefinitionError(
            f"cannot import workflow {record.get('workflow')!r} to rebuild the run; is it "
            "still there and on sys.path?"
        )
    args, kwargs = loads(base64.b64decode(record["call"]))
    result: WorkflowPlan = definition(*args, **kwargs)
    return result
