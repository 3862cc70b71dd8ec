"""The ``RunStore`` contract every backend implements, and the pieces they share.

Backends live one per module (``memory``, ``filesystem``, ``chunked``, ``sqlite``,
``postgres``). Domain rules stay above or in ``runyard.model``: a store checks status
transitions with ``Run.with_status`` inside its own lock or transaction, so two writers never
both win a transition, and it never loses a concurrent update.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

from runyard.errors import RunNotFound, ValidationError
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    Kind,
    LogLine,
    Metric,
    RunRecord,
    Status,
    Step,
    looks_like_id,
)
from runyard.stores.registrybase import RegistryStore, TokenStore
from runyard.stores.streams import (
    MetricColumns,
    MetricSeries,
    check_bounds,
    in_ranges,
    series_of,
    stream_kind,
    stream_slice,
)

# Fields ``update_run`` may change; the others have their own checked operations.
UPDATABLE = frozenset(
    {
        "description",
        "folder",
        "heartbeat",
        "owner",
        "code",
        "environment",
        "config",
        "origin",
        "resources",
        "kind",
        "internals",  # (a store copy brings a run's up to date; merge_metadata never does)
    }
)


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list. Every given criterion must hold (tags: all of them)."""

    status: frozenset[Status] = frozenset()
    tags: frozenset[str] = frozenset()
    folder: str | None = None  # this folder and everything below it
    name: str | None = None  # substring of the name
    kind: Kind | None = None
    created_since: float | None = None  # inclusive
    created_until: float | None = None  # exclusive

    def matches(self, run: RunRecord) -> bool:
        if self.status and run.status not in self.status:
            return False
        if self.tags and not self.tags <= run.tags:
            return False
        if self.folder is not None and not in_folder(run.folder, self.folder):
            return False
        if self.name is not None and self.name not in run.name:
            return False
        if self.kind is not None and run.kind is not self.kind:
            return False
        if self.created_since is not None and run.created < self.created_since:
            return False
        return self.created_until is None or run.created < self.created_until


def in_folder(folder: str, prefix: str) -> bool:
    if prefix == "/":
        return True
    return folder == prefix or folder.startswith(prefix + "/")


@dataclass(frozen=True)
class MetricSummary:
    name: str
    count: int
    last: float
    last_step: int | None
    minimum: float
    maximum: float


@runtime_checkable
class RunStore(RegistryStore, TokenStore, Protocol):
    """Where runs live. All methods raise ``RunNotFound`` for an unknown run id. The store
    keeps the registry too (codespecs, buffers: see ``registrybase.RegistryStore``)."""

    url: str

    # runs
    def create_run(self, run: RunRecord) -> RunRecord: ...  # NameTaken, RunExists
    def get_run(self, run_id: str) -> RunRecord: ...
    def get_run_by_name(self, name: str) -> RunRecord: ...
    def find_run(self, ref: str) -> RunRecord: ...  # an id or a name
    def list_runs(
        self,
        filter: RunFilter | None = None,
        *,
        newest_first: bool = True,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        order_by: str = "created",
    ) -> list[RunRecord]: ...
    # ``after``: a run id; only the runs after it in this order (ids sort by creation: newest
    # first, ids below it; else above it). The run need not exist any more (keyset paging).
    # ``order_by``: created (by id), name, started, ended, status, kind, duration or
    # param:KEY, ``newest_first`` its direction; ties by id, runs with no value last
    # (``stores.ordering``); ``after`` only with created (else ValidationError: use offset)
    def count_runs(self, filter: RunFilter | None = None) -> int: ...
    def folder_counts(self, filter: RunFilter | None = None) -> dict[str, int]: ...
    # each folder holding runs that match ``filter`` -> how many of them lie directly in it
    # (not below it); sorted by folder. A dashboard's folder tree sums subtrees itself
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
    ) -> RunRecord: ...  # IllegalTransition; ConflictError when ``expect`` is not the status;
    # ``metadata`` and ``internals`` are merged into the run's in the same write (a run's
    # closing summary), and ``fields`` (as ``update_run`` takes them: the closing heartbeat
    # and resources) are set in it; a refused transition writes none of them
    def update_run(self, run_id: str, **fields: Any) -> RunRecord: ...  # only UPDATABLE fields
    def add_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord: ...
    def remove_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord: ...
    def merge_metadata(self, run_id: str, data: Mapping[str, Any]) -> RunRecord: ...
    def set_parameters(self, run_id: str, params: Mapping[str, Any]) -> RunRecord: ...  # merges
    def rename_run(self, run_id: str, new_name: str) -> RunRecord: ...  # NameTaken
    def delete_run(self, run_id: str) -> None: ...

    # steps and attempts
    def upsert_step(self, run_id: str, step: Step) -> Step: ...  # replaces by name
    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step: ...
    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None: ...  # one batch, in
    # one write where the backend can (the default upserts them one by one); the last of a
    # name wins. A workflow records its task runs so: the backend encodes them its own way
    def get_step(self, run_id: str, name: str) -> Step: ...  # StepNotFound
    def get_steps(self, run_id: str) -> list[Step]: ...  # by creation time, then name

    # metrics, events, logs (append-only; read back in append order)
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None: ...
    def append_metric_columns(  # the same batch as four equally long columns
        self, run_id: str, names: Sequence[str], values: Sequence[float],
        steps: Sequence[int | None], times: Sequence[float],
    ) -> None: ...
    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]: ...
    def metric_summaries(self, run_id: str) -> list[MetricSummary]: ...  # sorted by name
    def append_events(self, run_id: str, events: Sequence[Event]) -> None: ...
    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]: ...
    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None: ...
    def read_logs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        since: float | None = None,
        tail: int | None = None,
    ) -> list[LogLine]: ...
    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        ...  # ``items``: the run's rows of ``kind`` (STREAMS) from number ``start`` on; only
    # those it lacks are appended, all under its lock, so two copies never write a row twice;
    # returns how many were appended
    def read_from(self, run_id: str, kind: str, start: int, limit: int | None = None
                  ) -> list[Any]: ...
    # the rows of ``kind`` (STREAMS) numbered ``start``, start+1, ... (the positions
    # ``append_missing`` counts), at most ``limit`` of them: Metric, Event or LogLine records
    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool: ...
    # all of it in one write (SQL: one transaction), unless a batch with ``key`` was appended
    # to this run before: then nothing, and False. Atomic across processes. ``key``: 1-128
    # of [A-Za-z0-9._:-] (ValidationError). A bad value refuses the whole batch: nothing
    # written, key not recorded. Keys live with the run (deleted with it; not copied)
    def read_metric_series(
        self, run_id: str, name: str, *,
        steps: tuple[int | None, int | None] | None = None,
        times: tuple[float | None, float | None] | None = None,
    ) -> MetricSeries: ...
    # one metric's values in append order, within inclusive step and time bounds (a None
    # bound is open; a value with no step is outside any ``steps`` range)

    # data catalog
    def add_artifact(self, run_id: str, artifact: Artifact) -> None: ...  # replaces name+stage
    def add_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None: ...  # all or
    # none when a name is bad; the SQL stores write them in one transaction
    def list_artifacts(self, run_id: str) -> list[Artifact]: ...

    def close(self) -> None: ...


class StoreHelpers(ABC):
    """Behaviour shared by every backend, written over the primitive methods."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abstractmethod
    def get_run_by_name(self, name: str) -> RunRecord: ...

    @abstractmethod
    def upsert_step(self, run_id: str, step: Step) -> Step: ...

    @abstractmethod
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None: ...

    @abstractmethod
    def add_artifact(self, run_id: str, artifact: Artifact) -> None: ...

    def add_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        """``add_artifact`` for each of ``artifacts``, their names checked first (a bad one
        refuses them all); backends that can write them in one transaction do."""
        from runyard.model.validate import artifact_name

        for artifact in artifacts:
            artifact_name(artifact.name)
        for artifact in artifacts:
            self.add_artifact(run_id, artifact)

    def append_metric_columns(
        self, run_id: str, names: Sequence[str], values: Sequence[float],
        steps: Sequence[int | None], times: Sequence[float],
    ) -> None:
        """``append_metrics`` for a batch given as columns, as the tracking client queues it
        (checked the same way: a bad value refuses the whole batch, and nothing is written).
        Backends that store columns (the SQL stores) take them without making records."""
        self.append_metrics(run_id, metric_records(names, values, steps, times))

    def read_metric_series(
        self, run_id: str, name: str, *,
        steps: tuple[int | None, int | None] | None = None,
        times: tuple[float | None, float | None] | None = None,
    ) -> MetricSeries:
        """Over ``read_metrics``; the SQL stores read their chunks into arrays instead."""
        steps, times = check_bounds(steps, "steps"), check_bounds(times, "times")
        found = self.read_metrics(run_id, name)  # type: ignore[attr-defined]
        if steps is not None or times is not None:
            found = [m for m in found if in_ranges(m.step, m.time, steps, times)]
        return series_of(found)

    def read_from(self, run_id: str, kind: str, start: int, limit: int | None = None
                  ) -> list[Any]:
        """A slice of ``read_*``; the SQL stores read only the rows asked for."""
        start, end = stream_slice(start, limit)
        rows: list[Any] = getattr(self, f"read_{stream_kind(kind)}")(run_id)
        return rows[start:end]

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """Upsert several steps; backends that can write them in one transaction do."""
        for step in steps:
            self.upsert_step(run_id, step)

    def find_run(self, ref: str) -> RunRecord:
        if looks_like_id(ref):
            try:
                return self.get_run(ref)
            except RunNotFound:
                pass
        try:
            return self.get_run_by_name(ref)
        except RunNotFound:
            raise RunNotFound(ref) from None

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections and handles; the default has none."""

    def __enter__(self) -> StoreHelpers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metric_records(names: Sequence[Any], values: Sequence[Any], steps: Sequence[Any],
                   times: Sequence[Any]) -> list[Metric]:
    """Four columns as ``Metric`` records (not checked yet); unequal columns are refused."""
    if not len(names) == len(values) == len(steps) == len(times):
        raise ValidationError(
            "metric columns (names, values, steps, times) must be equally long")
    return list(map(_metric, zip(names, values, steps, times, strict=True)))


_metric = partial(tuple.__new__, Metric)  # a Metric without NamedTuple's slower constructor


def check_after(after: object) -> str:
    """``list_runs``'s ``after``, if it is a run id (of any run, even one deleted since)."""
    if not isinstance(after, str):
        raise ValidationError(f"list_runs(after=...) takes a run id, not {after!r:.60}")
    return after


def check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValidationError(
            f"update_run cannot change {', '.join(sorted(unknown))}; "
            "use the dedicated operation (status, tags, metadata, parameters, rename)"
        )


def page(runs: list[RunRecord], newest_first: bool, limit: int | None,
         offset: int, after: str | None = None) -> list[RunRecord]:
    """Order (by id, i.e. creation) and cut a list of runs, for backends that filter in Python;
    ``after``: only the runs past that id in this order (keyset paging)."""
    if after is not None:
        check_after(after)
        runs = [r for r in runs if (r.id < after if newest_first else r.id > after)]
    ordered = sorted(runs, key=lambda r: r.id, reverse=newest_first)
    end = None if limit is None else offset + limit
    return ordered[offset:end]


def count_folders(runs: Iterable[RunRecord]) -> dict[str, int]:
    """``folder_counts`` of the runs given (already filtered), for backends that filter in
    Python."""
    counts = Counter(run.folder for run in runs)
    return {folder: counts[folder] for folder in sorted(counts)}


T = TypeVar("T", Event, LogLine)


def tail_since(items: Sequence[T], since: float | None, tail: int | None) -> list[T]:
    chosen = [i for i in items if since is None or i.time >= since]
    if tail is not None:
        chosen = chosen[-tail:] if tail > 0 else []
    return chosen


def summarise(metrics: Iterable[Metric]) -> list[MetricSummary]:
    acc: dict[str, list[Any]] = {}
    for m in metrics:
        s = acc.get(m.name)
        if s is None:
            acc[m.name] = [1, m.value, m.step, m.value, m.value]
        else:
            s[0] += 1
            s[1], s[2] = m.value, m.step
            s[3] = min(s[3], m.value)
            s[4] = max(s[4], m.value)
    return [MetricSummary(n, *acc[n]) for n in sorted(acc)]


def checked_new_run(run: RunRecord) -> RunRecord:
    """Validate what a new run brings (name, folder, tags, how deep its metadata and
    parameters nest) and normalise its folder."""
    from runyard.model import validate as check

    check.run_name(run.name)
    for t in run.tags:
        check.tag(t)
    check.nesting(run.metadata, "metadata")
    check.nesting(run.parameters, "parameters")
    folder = check.folder(run.folder)
    return run if folder == run.folder else run.replace(folder=folder)
