"""Executing a ``Dag`` on a runtime: ready task runs submitted, retries, reuse, failure, cancel.

The driver keeps how many inputs each task run still waits for. A task run whose inputs are all
known is first looked up in the re-run cache (task definition hash and input digests); a hit
completes it at once as reused, a miss submits ``run_task`` to the runtime. Each finished attempt
is recorded; a failed one is submitted again while the task's ``max_attempts`` allows. A task run
that fails for good stops new submissions (task runs already running finish and are recorded),
runs the ``on_failure`` task if one is named, and fails the run. All state changes happen under
one lock, from whichever thread the runtime completes futures on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from runyard.engine.dag import Dag, Node, Ref, digest_of, substitute
from runyard.engine.recorder import Recorder
from runyard.engine.reuse import ReuseIndex
from runyard.engine.values import Value, encode
from runyard.engine.worker import Bound, Outcome, TaskCall, run_task
from runyard.errors import RunyardError
from runyard.model import Artifact, Attempt, LogLine, Stage, Status, Step
from runyard.runtimes.base import Runtime


@dataclass
class Prepared:
    """One task run ready to execute: its arguments and their digests."""

    node: Node
    params: dict[str, Value | Bound]
    digests: dict[str, str | None]
    docs: dict[str, Any]


class Driver:
    def __init__(self, dag: Dag, runtime: Runtime, recorder: Recorder, blob_root: str | None,
                 reuse: ReuseIndex | None = None) -> None:
        self.dag, self.runtime, self.recorder = dag, runtime, recorder
        self.blob_root, self.reuse = blob_root, reuse
        self.waiting = {node_id: len(node.deps) for node_id, node in dag.nodes.items()}
        self.outputs: dict[str, Value] = {}
        self.steps: dict[str, Step] = {}
        self.inflight = 0
        self.failure: str | None = None
        self.canceled = False
        self.counts = {"executed": 0, "reused": 0}
        self.done = threading.Event()
        self._lock = threading.RLock()

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._advance([n for n, left in self.waiting.items() if left == 0])

    def cancel(self) -> None:
        with self._lock:
            self.canceled = True
            self._check_done()

    def outcome(self) -> tuple[Status, str | None]:
        if self.failure is not None:
            return Status.FAILED, self.failure
        if self.canceled:
            return Status.CANCELED, "canceled"
        return Status.SUCCEEDED, None

    def result_value(self) -> Value:
        """The workflow's result (after a success), as one ``Value``."""
        if isinstance(self.dag.result, Ref):
            return self.outputs[self.dag.result.node]
        resolved = substitute(self.dag.result,
                              lambda ref: self.outputs[ref.node].load(self.blob_root))
        return encode(resolved, self.blob_root)

    # -- scheduling -------------------------------------------------------------------------
    def _stopping(self) -> bool:
        return self.failure is not None or self.canceled

    def _advance(self, ready: list[str]) -> None:
        queue = deque(ready)
        while queue and not self._stopping():
            prepared = self._prepare(self.dag.nodes[queue.popleft()])
            found = self.reuse.find(prepared) if self.reuse is not None else None
            if found is None:
                self._submit(prepared, 1)
                continue
            self._complete_reused(prepared, *found)
            queue.extend(self._release(prepared.node.id))
        self._check_done()

    def _prepare(self, node: Node) -> Prepared:
        params: dict[str, Value | Bound] = {}
        digests: dict[str, str | None] = {}
        docs: dict[str, Any] = {}
        for name, param in node.params.items():
            if isinstance(param, Value):
                params[name], digests[name], docs[name] = param, param.digest, param.to_doc()
                continue
            if isinstance(param, Ref):
                value = self.outputs[param.node]
                params[name], digests[name] = value, value.digest
                docs[name] = {"digest": value.digest, "from": param.node}
                continue
            bound = Bound(param.template, {ref: self.outputs[ref] for ref in param.refs})
            params[name] = bound
            digests[name] = digest_of(param.template, bound.digest_of_ref)
            docs[name] = {"digest": digests[name], "from": list(param.refs),
                          "template": _pickled(param.template)}
        return Prepared(node, params, digests, docs)

    def _release(self, node_id: str) -> list[str]:
        ready = []
        for child in self.dag.dependents[node_id]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0:
                ready.append(child)
        return ready

    def _submit(self, prepared: Prepared, number: int) -> None:
        node = prepared.node
        call = TaskCall(node.id, node.task, prepared.params, self.blob_root,
                        local=not self.runtime.remote)
        self._record(prepared, Attempt(number, Status.RUNNING, time.time()), Status.RUNNING)
        try:
            future = self.runtime.submit(run_task, call)
        except RunyardError as exc:
            self._failed(prepared, Outcome(False, time.time(), time.time(), error=str(exc)),
                         number)
            return
        self.inflight += 1
        future.add_done_callback(lambda f: self._on_done(prepared, number, f))

    def _on_done(self, prepared: Prepared, number: int, future: Future[Outcome]) -> None:
        outcome = _outcome_of(future)
        with self._lock:
            self.inflight -= 1
            self.counts["executed"] += number == 1
            self._logs(prepared.node.id, outcome)
            if outcome.ok:
                self._succeeded(prepared, outcome, number)
            elif number < prepared.node.task.max_attempts and not self._stopping():
                self._record(prepared, _attempt(number, outcome), Status.RUNNING)
                self._submit(prepared, number + 1)
            else:
                self._failed(prepared, outcome, number)
            self._check_done()

    def _succeeded(self, prepared: Prepared, outcome: Outcome, number: int) -> None:
        node_id = prepared.node.id
        assert outcome.output is not None
        self.outputs[node_id] = outcome.output
        self._record(prepared, _attempt(number, outcome), Status.SUCCEEDED, outcome.output)
        if outcome.output.in_blob and outcome.output.digest is not None:
            self.recorder.put_artifact(Artifact(f"{node_id}/result", outcome.output.digest,
                                                outcome.output.size, Stage.PUT, time.time(),
                                                node_id, "task-result"))
        if prepared.node.kind == "task":
            self._advance(self._release(node_id))

    def _failed(self, prepared: Prepared, outcome: Outcome, number: int) -> None:
        self._record(prepared, _attempt(number, outcome), Status.FAILED)
        if prepared.node.kind == "on_failure":
            return
        if self.failure is None:
            tries = f" after {number} attempts" if number > 1 else ""
            self.failure = f"task run {prepared.node.id} failed{tries}: {outcome.error}"
            self._on_failure(prepared.node, outcome.error or "")

    def _on_failure(self, failed: Node, error: str) -> None:
        handler = failed.task.on_failure or self.dag.on_failure
        if handler is None:
            return
        from runyard.engine.dsl import handler_node

        node = handler_node(handler, failed.id, error)
        self._submit(self._prepare(node), 1)

    def _complete_reused(self, prepared: Prepared, value: Value, origin: dict[str, str]) -> None:
        self.outputs[prepared.node.id] = value
        self.counts["reused"] += 1
        step = self._step(prepared, Status.SUCCEEDED, value)
        step.metadata["reused_from"] = origin
        self.recorder.put_step(step)

    def _check_done(self) -> None:
        if self.inflight:
            return
        finished = len(self.outputs) == len(self.dag.nodes)
        if finished or self._stopping():
            self.done.set()

    # -- recording --------------------------------------------------------------------------
    def _step(self, prepared: Prepared, status: Status, output: Value | None = None) -> Step:
        node = prepared.node
        step = self.steps.get(node.id)
        if step is None:
            meta = {"task": node.task.name, "task_hash": node.task.definition_hash,
                    "key": node.key, "inputs": prepared.docs}
            step = Step(node.id, status, node.kind, time.time(), (), meta)
        step = Step(step.name, status, step.kind, step.created, step.attempts, step.metadata)
        if output is not None:
            step.metadata["output"] = output.to_doc()
        self.steps[node.id] = step
        return step

    def _record(self, prepared: Prepared, attempt: Attempt, status: Status,
                output: Value | None = None) -> None:
        attempt = Attempt(attempt.number, attempt.status, attempt.started, attempt.ended,
                          attempt.message, prepared.digests,
                          {} if output is None else {"result": output.digest})
        step = self._step(prepared, status, output).with_attempt(attempt)
        step = Step(step.name, status, step.kind, step.created, step.attempts, step.metadata)
        self.steps[step.name] = step
        self.recorder.put_step(step)

    def _logs(self, node_id: str, outcome: Outcome) -> None:
        self.recorder.put_logs([LogLine(t, text, stream, node_id)
                                for t, stream, text in outcome.logs])
        if outcome.trace:
            self.recorder.put_logs([LogLine(outcome.ended, line, "stderr", node_id)
                                    for line in outcome.trace.rstrip().splitlines()])


def _pickled(template: Any) -> str | None:
    import base64

    from runyard.engine.values import dumps

    data = dumps(template)
    return None if data is None else base64.b64encode(data).decode()


def _attempt(number: int, outcome: Outcome) -> Attempt:
    status = Status.SUCCEEDED if outcome.ok else Status.FAILED
    return Attempt(number, status, outcome.started, outcome.ended, outcome.error)


def _outcome_of(future: Future[Outcome]) -> Outcome:
    """The outcome, or a failed one when the runtime itself failed (a worker died)."""
    try:
        return future.result()
    except BaseException as exc:  # any runtime failure fails the attempt
        detail = " ".join(str(exc).split())[:500]
        now = time.time()
        return Outcome(False, now, now, error=f"{type(exc).__name__}: {detail}")
