"""One task run ready to execute (``Prepared``), and the records the driver keeps of its
arguments and attempts: kept apart from the driver's scheduling (``driver.py``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runyard.engine.dag import Nested, Node, flat_refs, substitute
from runyard.engine.recorder import StepState
from runyard.engine.values import Value
from runyard.engine.worker import Bound, Outcome
from runyard.model import Attempt, Status

if TYPE_CHECKING:
    from runyard.engine.driver import Driver


class Prepared(StepState):
    """One task run ready to execute: its arguments and their digests, and its record
    (``inputs``: the arguments' records, as the step's metadata holds them).

    It is the task run's step record too (a ``StepState``), and for a runtime in this
    process also the call (it has the attributes of a ``TaskCall``) and the callback the
    runtime tells of the attempt's end: one object per task run, where a record, a call and
    a callback would be three."""

    __slots__ = ("blobs", "digests", "driver", "inputs", "local", "node", "number",
                 "params", "task")

    def __init__(self, driver: Driver, node: Node, params: dict[str, Value | Bound],
                 digests: dict[str, str | None], inputs: dict[str, Any]) -> None:
        self.driver, self.node, self.params, self.digests = driver, node, params, digests
        self.inputs = inputs
        self.task, self.blobs = node.task, driver.blobs
        self.local = True
        self.number = 1  # the attempt in flight (or last made)
        StepState.__init__(self, node.id, node.kind, meta(node, inputs),
                           attempt_inputs=digests)

    def __call__(self, outcome: Outcome | None, error: BaseException | None) -> None:
        """The runtime's done-callback for the attempt in flight."""
        self.driver._on_done(self, outcome, error)



def refs_of(template: Any) -> list[str]:
    """The nodes whose results ``template`` holds."""
    found: list[str] = []
    substitute(template, lambda ref: found.append(ref.node))
    return found


def meta(node: Node, inputs: dict[str, Any]) -> dict[str, Any]:
    """The head of a task run's step metadata: task, its hash, the node's key, the inputs."""
    task = node.task
    return {"task": task.name, "task_hash": task.definition_hash, "key": node.key,
            "inputs": inputs}


def nested_record(param: Nested, digest: str | None) -> dict[str, Any]:
    """The record of an argument that holds results: its digest, the task runs whose results
    it holds (``from``), and how they are held: for a list or tuple of them, each once, its
    ``shape`` (``from`` gives the rest); else the ``template`` pickled (base64)."""
    record: dict[str, Any] = {"digest": digest, "from": list(param.refs)}
    template: Any = param.template
    if len(template) == len(param.refs) and flat_refs(template):
        record["shape"] = template.__class__.__name__
        return record
    import base64

    from runyard.engine.values import dumps as pickled

    data = pickled(template)
    record["template"] = None if data is None else base64.b64encode(data).decode()
    return record


def failed_attempt(number: int, outcome: Outcome, prepared: Prepared) -> Attempt:
    """A failed attempt as recorded (a succeeded one is recorded by ``_finished``)."""
    return Attempt(number, Status.FAILED, outcome.started, outcome.ended, outcome.error,
                   prepared.digests, {})


def lost(error: BaseException | None) -> Outcome:
    """A failed outcome for a call the runtime itself failed (a worker died)."""
    detail = " ".join(str(error).split())[:500]
    now = time.time()
    return Outcome(False, now, now, error=f"{type(error).__name__}: {detail}")
