"""``file:///dir`` — the file-system store: one JSON run log per run.

``<dir>/<run_id>.json`` holds the whole run log (``RunDoc.to_dict()``: the run, its steps and
attempts, metrics, events, log lines and data catalog, and the keys of the batches
``append_batch`` appended). Every change takes the run's lock
``<dir>/<run_id>.json.lock``, reads the log, applies the ``RunDoc`` operation and replaces the
file atomically, so concurrent writers in any number of processes and threads never lose an
update. ``<dir>/index.json`` indexes the runs for listing (see ``runyard.stores.fileindex``).
Lock files are left in place when a run is deleted: removing a lock file that another process
may be waiting on would let two writers in at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import RunNotFound, StoreError
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    LogLine,
    Metric,
    RunRecord,
    Step,
    artifact_to_dict,
    run_to_dict,
    step_to_dict,
)
from runyard.model import validate as check
from runyard.stores.base import MetricSummary, summarise, tail_since
from runyard.stores.batch import checked_batch
from runyard.stores.doc import RunDoc, checked_metrics
from runyard.stores.filebase import FileStoreBase, stream_items
from runyard.stores.files import (
    atomic_write_json,
    fsync_dir,
    read_json,
    remove_file,
    remove_leftovers,
    usable_id,
)
from runyard.stores.streams import MetricColumns

SECTIONS = ("steps", "metrics", "events", "logs", "artifacts")
BATCHES = "batches"  # the keys of the batches ``append_batch`` appended


@dataclass
class LogDoc(RunDoc):
    """A run log being changed: the run, plus only the parts the operation touches.

    ``raw`` is the log as read (``RunDoc.to_dict()`` form); the operation runs on this
    ``RunDoc`` (whose lists start empty and whose steps hold at most the step it names), and
    ``merged`` writes the result back into ``raw``. So a change costs one parse and one dump of
    the file, not the decoding of every step and metric in it.
    """

    raw: dict[str, Any] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)  # keys of batches appended now

    def has_batch(self, key: str) -> bool:
        return key in self.raw.get(BATCHES, ())

    def with_step(self, name: str) -> LogDoc:
        self.steps.update(RunDoc.from_dict(only_step(self.raw, name)).steps)
        return self

    def merged(self) -> dict[str, Any]:
        raw: dict[str, Any] = {section: list(self.raw.get(section, ())) for section in SECTIONS}
        raw["run"] = run_to_dict(self.run)
        if self.steps:
            for step in self.steps.values():
                put_entry(raw["steps"], step_to_dict(step), ("name",))
            raw["steps"].sort(key=lambda s: (s["created"], s["name"]))  # as RunDoc.to_dict does
        raw["metrics"].extend(list(m) for m in self.metrics)
        raw["events"].extend(list(e) for e in self.events)
        raw["logs"].extend(list(line) for line in self.logs)
        for artifact in self.artifacts.values():
            put_entry(raw["artifacts"], artifact_to_dict(artifact), ("name", "stage"))
        if self.batches or BATCHES in self.raw:
            raw[BATCHES] = [*self.raw.get(BATCHES, ()), *self.batches]
        return raw


def only_step(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return {"run": raw["run"], "steps": [s for s in raw.get("steps", ()) if s["name"] == name]}


def put_entry(entries: list[dict[str, Any]], entry: dict[str, Any], key: tuple[str, ...]) -> None:
    """Replace the entry with the same key in place (keeping its position), or append it."""
    for i, old in enumerate(entries):
        if all(old[k] == entry[k] for k in key):
            entries[i] = entry
            return
    entries.append(entry)


class FileStore(FileStoreBase[LogDoc]):
    scheme = "file"

    def _file(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def _raw(self, run_id: str) -> dict[str, Any]:
        if not usable_id(run_id):
            raise RunNotFound(run_id)
        path = self._file(run_id)
        try:
            raw = read_json(path)
        except FileNotFoundError:
            raise RunNotFound(run_id) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("run"), dict):
            raise StoreError(f"run log {path} is malformed (no run record)")
        return raw

    def _read(self, run_id: str, *sections: str, raw: dict[str, Any] | None = None) -> RunDoc:
        """The run with only the sections asked for decoded."""
        raw = self._raw(run_id) if raw is None else raw
        try:
            return RunDoc.from_dict({"run": raw["run"], **{s: raw.get(s, []) for s in sections}})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"run log {self._file(run_id)} is malformed ({exc!r})") from exc

    # -- the backend primitives -------------------------------------------------------------
    def _lock_path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json.lock"

    def _has_run(self, run_id: str) -> bool:
        return self._file(run_id).is_file()

    def _read_run(self, run_id: str) -> RunRecord:
        return self._read(run_id).run

    def _load_doc(self, run_id: str) -> LogDoc:
        raw = self._raw(run_id)
        return LogDoc(self._read(run_id, raw=raw).run, raw=raw)

    def _save_doc(self, doc: LogDoc) -> None:
        atomic_write_json(self._file(doc.run.id), doc.merged())

    def _create_files(self, run: RunRecord) -> None:
        atomic_write_json(self._file(run.id), RunDoc(run).to_dict())

    def _delete_files(self, run_id: str) -> None:
        remove_file(self._file(run_id))
        fsync_dir(self.root)
        remove_leftovers(self.root, self._file(run_id).name)

    def _run_ids(self) -> Iterator[str]:
        for path in self.root.glob("*.json"):
            if usable_id(path.stem):
                yield path.stem

    # -- steps and attempts -----------------------------------------------------------------
    def upsert_step(self, run_id: str, step: Step) -> Step:
        return self._change(run_id, lambda d: d.upsert_step(step))

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """All of ``steps`` in one rewrite of the run log (the last of a name wins)."""
        batch = list(steps)
        for step in batch:
            check.step_name(step.name)
        self._change(run_id, lambda d: [d.upsert_step(step) for step in batch])

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        return self._change(
            run_id, lambda d: d.with_step(step_name).upsert_attempt(step_name, attempt)
        )

    def get_step(self, run_id: str, name: str) -> Step:
        return self._read(run_id, "steps", raw=only_step(self._raw(run_id), name)).step(name)

    def get_steps(self, run_id: str) -> list[Step]:
        return self._read(run_id, "steps").ordered_steps()

    # -- metrics, events, logs --------------------------------------------------------------
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        batch = checked_metrics(metrics)
        self._change(run_id, lambda d: d.metrics.extend(batch))

    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        metrics = self._read(run_id, "metrics").metrics
        return [m for m in metrics if name is None or m.name == name]

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return summarise(self._read(run_id, "metrics").metrics)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        batch = [Event(*e) for e in events]
        self._change(run_id, lambda d: d.events.extend(batch))

    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]:
        return tail_since(self._read(run_id, "events").events, since, tail)

    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        batch = [LogLine(*line) for line in lines]
        self._change(run_id, lambda d: d.logs.extend(batch))

    def read_logs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        since: float | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        logs = self._read(run_id, "logs").logs
        return tail_since([x for x in logs if step is None or x.step == step], since, tail)

    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        batch = stream_items(kind, items)

        def add(doc: LogDoc) -> int:
            missing = batch[max(len(doc.raw.get(kind, ())) - start, 0):]
            getattr(doc, kind).extend(missing)
            return len(missing)

        return self._change(run_id, add)

    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool:
        """The rows and the key in one replace of the run log (checked first)."""
        found, said, lines = checked_batch(key, metrics, events, logs)

        def add(doc: LogDoc) -> bool:
            if doc.has_batch(key):
                return False
            doc.batches.append(key)
            doc.metrics.extend(found)
            doc.events.extend(said)
            doc.logs.extend(lines)
            return True

        return self._change(run_id, add)

    # -- catalog ----------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self._change(run_id, lambda d: d.add_artifact(artifact))

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return list(self._read(run_id, "artifacts").artifacts.values())
