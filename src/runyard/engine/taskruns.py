"""The task runs of a workflow run, read back from its steps: status, attempts, values."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.core.context import context_of
from runyard.engine.dag import Ref, substitute
from runyard.engine.values import Value, loads
from runyard.model import Attempt, Status, Step
from runyard.stores import RunStore

if TYPE_CHECKING:
    from runyard.blobs import BlobStore


@dataclass(frozen=True)
class TaskRun:
    """One task run: its step record, and its arguments and output loaded on demand."""

    name: str
    task: str
    status: Status
    attempts: tuple[Attempt, ...]
    reused_from: dict[str, str] | None
    step: Step
    _outputs: dict[str, dict[str, Any]]
    _blobs: BlobStore

    @property
    def kind(self) -> str:
        return self.step.kind

    @property
    def inputs(self) -> dict[str, str | None]:
        """The digest of each argument, by parameter name."""
        docs = self.step.metadata.get("inputs", {})
        return {name: doc.get("digest") for name, doc in docs.items()}

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments the task was called with, by parameter name."""
        docs = self.step.metadata.get("inputs", {})
        return {name: self._argument(doc) for name, doc in docs.items()}

    @property
    def output(self) -> Any:
        """The task's result (``None`` if it has none yet)."""
        doc = self.step.metadata.get("output")
        return None if doc is None else Value.from_doc(doc).load(self._blobs)

    @property
    def output_digest(self) -> str | None:
        doc = self.step.metadata.get("output")
        return None if doc is None else doc.get("digest")

    def _argument(self, doc: dict[str, Any]) -> Any:
        source = doc.get("from")
        if source is None:
            return Value.from_doc(doc).load(self._blobs)
        if isinstance(source, str):
            return self._upstream(source)
        shape = doc.get("shape")
        if shape in ("list", "tuple"):  # each result once, in this order (see the driver)
            items = [self._upstream(node) for node in source]
            return items if shape == "list" else tuple(items)
        template = loads(base64.b64decode(doc["template"]))
        return substitute(template, lambda ref: self._upstream(ref.node))

    def _upstream(self, node: str) -> Any:
        return Value.from_doc(self._outputs[node]).load(self._blobs)


def task_runs(store: RunStore, run_id: str) -> list[TaskRun]:
    steps = store.get_steps(run_id)
    outputs = {s.name: s.metadata["output"] for s in steps if "output" in s.metadata}
    blobs = context_of(store).blobs
    return [
        TaskRun(s.name, str(s.metadata.get("task", s.name)), s.status, s.attempts,
                s.metadata.get("reused_from"), s, outputs, blobs)
        for s in steps
    ]


__all__ = ["Ref", "TaskRun", "task_runs"]
