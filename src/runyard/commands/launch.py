"""Creating, starting and canceling command runs.

``create`` records a ``command`` run as ``pending`` with everything its supervisor needs in its
parameters (the resolved codespec, the buffers, replicas, timeout, executor): buffers that
were not given are created, and the output buffers are claimed for the run at once, so their
readers can wait for them. ``start`` spawns the detached supervisor. ``cancel`` asks for an
end: a pending run is canceled at once, a running one becomes ``canceling`` and its supervisor
stops the job's processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.commands.registry import CREATED, INCOMPLETE, Registry
from runyard.commands.runspec import RunSpec
from runyard.core.context import StoreContext
from runyard.core.runs import create_run
from runyard.errors import ConflictError, RuntimeUnavailable
from runyard.model import Event, Kind, Owner, RunRecord, Status
from runyard.processes import executors

if TYPE_CHECKING:
    from runyard.commands.detach import Handle

HEARTBEAT_S = 2.0


@dataclass(frozen=True)
class Created:
    run: RunRecord
    buffers: dict[str, str]  # every parameter -> buffer id
    new: frozenset[str]  # the parameters whose buffers were created for this run


def create(ctx: StoreContext, spec: RunSpec, claim_inputs: frozenset[str] = frozenset(),
           owner: Owner | None = None, *, name: str | None = None,
           folder: str = "/") -> Created:
    """Record a pending command run; ``claim_inputs``: new input buffers this process writes.

    ``owner``: its supervisor, when it is known already (forked early, see ``detach``); the
    run and its output buffers are then recorded as owned by it, and the supervisor can start
    the job without writing that first. ``name`` and ``folder``: the run's (default: a
    generated name, ``/``)."""
    _check_given(ctx.registry, spec)
    buffers, new = dict(spec.buffers), set()
    for param in spec.codespec.parameters:
        if param not in buffers:
            buffers[param] = ctx.registry.create_buffer().id
            new.add(param)
    note = executors.image_note(spec.codespec.image, spec.executor)
    run = create_run(
        ctx.store, kind=Kind.COMMAND, status=Status.PENDING, name=name, folder=folder,
        tags=[f"{k}={v}" if v else k for k, v in spec.tags.items()],
        metadata={"image": note} if note else {},
        parameters=parameters(spec, buffers),
        config={"heartbeat_interval": HEARTBEAT_S, "executor": spec.executor},
        **_owned(owner),
    )
    if note:
        ctx.store.append_events(run.id, [Event(run.created, f"image {note}", "warning")])
    _claim(ctx, run, spec, buffers, claim_inputs & new, owner)
    return Created(run, buffers, frozenset(new))


def _owned(owner: Owner | None) -> dict[str, Any]:
    return {} if owner is None else {"owner": owner, "heartbeat": time.time()}


def parameters(spec: RunSpec, buffers: dict[str, str]) -> dict[str, object]:
    return {
        "codespec": spec.codespec_ref or "inline",
        "spec": spec.codespec.to_dict(),
        "buffers": buffers,
        "replicas": spec.replicas,
        "timeout_s": spec.timeout_s,
        "executor": spec.executor,
    }


def _check_given(registry: Registry, spec: RunSpec) -> None:
    for name, buffer_id in spec.buffers.items():
        buffer = registry.buffer(buffer_id)
        if name in spec.codespec.outputs and buffer.state != CREATED:
            raise ConflictError(f"output buffer {buffer_id} already has data ({buffer.state}); "
                                "give a new buffer, or leave it out to get one")
        if name in spec.codespec.inputs and buffer.state == INCOMPLETE:
            raise ConflictError(f"input buffer {buffer_id} is incomplete: {buffer.reason}")


def _claim(ctx: StoreContext, run: RunRecord, spec: RunSpec, buffers: dict[str, str],
           inputs: set[str] | frozenset[str], owner: Owner | None) -> None:
    try:
        for name in spec.codespec.outputs:
            ctx.registry.claim(buffers[name], owner, run_id=run.id, parts=spec.replicas)
        for name in inputs:
            from runyard.processes.owners import this_owner

            ctx.registry.claim(buffers[name], this_owner())
    except ConflictError as exc:
        ctx.store.update_status(run.id, Status.FAILED, f"buffers: {exc}")
        raise


def start(ctx: StoreContext, run: RunRecord, handle: Handle | None = None) -> None:
    """Hand the run to its supervisor: ``handle`` (from ``detach.prefork``, made before
    any database was opened), else a supervisor in a new interpreter."""
    from runyard.commands.detach import spawn

    log_path = ctx.work_dir(run.id) / "supervisor.log"
    try:
        if handle is not None:
            handle.start(run.id, log_path)
        else:
            spawn(ctx.url, run.id, log_path)
    except (OSError, RuntimeUnavailable) as exc:
        ctx.store.update_status(run.id, Status.FAILED, f"failed to start: {exc}")
        for name in run.parameters["spec"]["buffers"]["outputs"]:
            ctx.registry.finish(run.parameters["buffers"][name], False, "its run never started")
        raise


def cancel(ctx: StoreContext, ref: str) -> RunRecord:
    """Ask for a run's end; returns it as ``canceled`` (was pending) or ``canceling``."""
    from runyard.commands.follow import refresh

    run = refresh(ctx.store, ctx.store.find_run(ref))
    if run.kind is not Kind.COMMAND:
        raise ConflictError(f"run {run.id} is a {run.kind.value} run; only command runs can be "
                            "canceled here")
    target = {Status.PENDING: Status.CANCELED, Status.RUNNING: Status.CANCELING}.get(run.status)
    if target is None:
        raise ConflictError(f"run {run.id} is {run.status.value}; only pending or running runs "
                            "can be canceled")
    try:
        return ctx.store.update_status(run.id, target, "canceled by request", expect=run.status)
    except ConflictError:
        return cancel(ctx, run.id)  # it moved on meanwhile (pending -> running): ask again
