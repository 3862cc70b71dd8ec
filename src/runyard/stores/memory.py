"""``memory://`` — the buffered store: everything in this process's memory, thread-safe."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runyard.errors import NameTaken, RunExists, RunNotFound
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    LogLine,
    Metric,
    RunRecord,
    Status,
    Step,
)
from runyard.model import validate as check
from runyard.stores.base import (
    MetricSummary,
    RunFilter,
    StoreHelpers,
    checked_new_run,
    count_folders,
    summarise,
    tail_since,
)
from runyard.stores.batch import checked_batch
from runyard.stores.doc import RunDoc, checked_metrics
from runyard.stores.memregistry import MemoryRegistry
from runyard.stores.ordering import check_listing, page_by
from runyard.stores.streams import MetricColumns, stream_kind


class MemoryStore(MemoryRegistry, StoreHelpers):
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._docs: dict[str, RunDoc] = {}
        self._names: dict[str, str] = {}
        self._batches: dict[str, set[str]] = {}  # the keys of each run's appended batches

    def _doc(self, run_id: str) -> RunDoc:
        try:
            return self._docs[run_id]
        except KeyError:
            raise RunNotFound(run_id) from None

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        run = checked_new_run(run)
        with self._lock:
            if run.id in self._docs:
                raise RunExists(run.id)
            if run.name in self._names:
                raise NameTaken(run.name)
            self._docs[run.id] = RunDoc(copy.deepcopy(run))
            self._names[run.name] = run.id
        return run

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            return copy.deepcopy(self._doc(run_id).run)

    def get_run_by_name(self, name: str) -> RunRecord:
        with self._lock:
            if name not in self._names:
                raise RunNotFound(name)
            return self.get_run(self._names[name])

    def list_runs(
        self,
        filter: RunFilter | None = None,
        *,
        newest_first: bool = True,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        order_by: str = "created",
    ) -> list[RunRecord]:
        order, wanted = check_listing(order_by, after), filter or RunFilter()
        with self._lock:
            runs = [d.run for d in self._docs.values() if wanted.matches(d.run)]
            return copy.deepcopy(page_by(runs, order, newest_first, limit, offset, after))

    def count_runs(self, filter: RunFilter | None = None) -> int:
        wanted = filter or RunFilter()
        with self._lock:
            return sum(1 for d in self._docs.values() if wanted.matches(d.run))

    def folder_counts(self, filter: RunFilter | None = None) -> dict[str, int]:
        wanted = filter or RunFilter()
        with self._lock:
            return count_folders(d.run for d in self._docs.values() if wanted.matches(d.run))

    def _edit(self, run_id: str, op: str, *args: Any) -> Any:
        with self._lock:
            doc = self._doc(run_id)
            before = doc.run
            try:
                return copy.deepcopy(getattr(doc, op)(*copy.deepcopy(args)))
            except BaseException:
                doc.run = before
                raise

    def update_status(
        self,
        run_id: str,
        status: Status,
        reason: str | None = None,
        *,
        expect: Status | None = None,
        now: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        internals: Mapping[str, Any] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        result: RunRecord = self._edit(run_id, "set_status", status, reason, expect, now,
                                 None if metadata is None else dict(metadata),
                                 None if internals is None else dict(internals),
                                 None if fields is None else dict(fields))
        return result

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        result: RunRecord = self._edit(run_id, "update", fields)
        return result

    def add_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        result: RunRecord = self._edit(run_id, "add_tags", list(tags))
        return result

    def remove_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        result: RunRecord = self._edit(run_id, "remove_tags", list(tags))
        return result

    def merge_metadata(self, run_id: str, data: Mapping[str, Any]) -> RunRecord:
        result: RunRecord = self._edit(run_id, "merge_metadata", dict(data))
        return result

    def set_parameters(self, run_id: str, params: Mapping[str, Any]) -> RunRecord:
        result: RunRecord = self._edit(run_id, "set_parameters", dict(params))
        return result

    def rename_run(self, run_id: str, new_name: str) -> RunRecord:
        check.run_name(new_name)
        with self._lock:
            doc = self._doc(run_id)
            if self._names.get(new_name, run_id) != run_id:
                raise NameTaken(new_name)
            del self._names[doc.run.name]
            self._names[new_name] = run_id
            doc.run = doc.run.replace(name=new_name)
            return copy.deepcopy(doc.run)

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            doc = self._doc(run_id)
            del self._docs[run_id]
            del self._names[doc.run.name]
            self._batches.pop(run_id, None)

    # -- steps ------------------------------------------------------------------------------
    def upsert_step(self, run_id: str, step: Step) -> Step:
        result: Step = self._edit(run_id, "upsert_step", step)
        return result

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """All of ``steps`` in one locked edit (each copied, so the caller keeps its own)."""
        self._put_steps(run_id, copy.deepcopy(list(steps)))

    def _put_steps(self, run_id: str, steps: list[Step]) -> None:
        for step in steps:  # all or none: every name is checked first
            check.step_name(step.name)
        with self._lock:
            doc = self._doc(run_id)
            for step in steps:
                doc.upsert_step(step)

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        result: Step = self._edit(run_id, "upsert_attempt", step_name, attempt)
        return result

    def get_step(self, run_id: str, name: str) -> Step:
        result: Step = self._edit(run_id, "step", name)
        return result

    def get_steps(self, run_id: str) -> list[Step]:
        result: list[Step] = self._edit(run_id, "ordered_steps")
        return result

    # -- metrics, events, logs --------------------------------------------------------------
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        batch = checked_metrics(metrics)
        with self._lock:
            self._doc(run_id).metrics.extend(batch)

    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        with self._lock:
            return [m for m in self._doc(run_id).metrics if name is None or m.name == name]

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        with self._lock:
            return summarise(self._doc(run_id).metrics)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        with self._lock:
            self._doc(run_id).events.extend(Event(*e) for e in events)

    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]:
        with self._lock:
            return tail_since(self._doc(run_id).events, since, tail)

    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        with self._lock:
            self._doc(run_id).logs.extend(LogLine(*line) for line in lines)

    def read_logs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        since: float | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        with self._lock:
            lines = [x for x in self._doc(run_id).logs if step is None or x.step == step]
            return tail_since(lines, since, tail)

    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        with self._lock:  # (re-entrant: the append below takes it again)
            have = len(getattr(self._doc(run_id), stream_kind(kind)))
            missing = items[max(have - start, 0):]
            getattr(self, f"append_{kind}")(run_id, missing)
        return len(missing)

    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool:
        found, said, lines = checked_batch(key, metrics, events, logs)
        with self._lock:
            doc = self._doc(run_id)
            keys = self._batches.setdefault(run_id, set())
            if key in keys:
                return False
            keys.add(key)
            doc.metrics.extend(found)
            doc.events.extend(said)
            doc.logs.extend(lines)
        return True

    # -- catalog ----------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self._edit(run_id, "add_artifact", artifact)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        with self._lock:
            return list(self._doc(run_id).artifacts.values())
