"""The re-run cache: results of the run being re-run, found by what produced them.

A task run of the old run can stand in for one of the new run when both ran the same task
definition (its hash) on the same inputs (their digests) and the old one succeeded, with a
result that can be loaded. Reused task runs of the old run count too, so chains of re-runs keep
reusing. Values are keyed by digest only, so a task run whose upstream re-executed but produced
the same value is reused as well.
"""

from __future__ import annotations

from typing import Any

from runyard.engine.values import Value
from runyard.model import Status
from runyard.stores import RunStore


def cache_key(task_hash: str, digests: dict[str, str | None]) -> tuple[str, ...] | None:
    if any(d is None for d in digests.values()):
        return None
    return (task_hash, *(f"{k}={v}" for k, v in sorted(digests.items())))


class ReuseIndex:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._found: dict[tuple[str, ...], tuple[dict[str, Any], str]] = {}

    @classmethod
    def of_run(cls, store: RunStore, run_id: str) -> ReuseIndex:
        index = cls(run_id)
        for step in store.get_steps(run_id):
            meta = step.metadata
            if step.status is not Status.SUCCEEDED or step.kind != "task" or "output" not in meta:
                continue
            digests = {name: doc.get("digest") for name, doc in meta.get("inputs", {}).items()}
            key = cache_key(str(meta.get("task_hash")), digests)
            if key is not None and meta["output"].get("digest") is not None:
                index._found[key] = (meta["output"], step.name)
        return index

    def __len__(self) -> int:
        return len(self._found)

    def find(self, prepared: Any) -> tuple[Value, dict[str, str]] | None:
        """The old result and where it came from, for a ``Prepared`` task run; else ``None``."""
        key = cache_key(prepared.node.task.definition_hash, prepared.digests)
        hit = None if key is None else self._found.get(key)
        if hit is None:
            return None
        doc, step = hit
        return Value.from_doc(doc), {"run": self.origin, "step": step}
