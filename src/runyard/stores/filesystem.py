"""``file:///dir`` — the file-system store: one JSON run log per run.

``<dir>/<run_id>.json`` holds the whole run log (``RunDoc.to_dict()``: the run, its steps and
attempts, metrics, events, log lines and data catalog). Every change takes the run's lock
``<dir>/<run_id>.json.lock``, reads the log, applies the ``RunDoc`` operation and replaces the
file atomically, so concurrent writers in any number of processes and threads never lose an
update. ``<dir>/index.json`` indexes the runs for listing (see ``runyard.stores.fileindex``).
Lock files are left in place when a run is deleted: removing a lock file that another process
may be waiting on would let two writers in at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from runyard.errors import RunNotFound, StoreError
from runyard.model import Artifact, Attempt, Event, LogLine, Metric, Run, Step
from runyard.stores.base import MetricSummary, summarise, tail_since
from runyard.stores.doc import RunDoc, checked_metrics
from runyard.stores.filebase import FileStoreBase
from runyard.stores.files import (
    atomic_write_json,
    fsync_dir,
    read_json,
    remove_file,
    usable_id,
)


class FileStore(FileStoreBase):
    scheme = "file"

    def _file(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    # -- the backend primitives -------------------------------------------------------------
    def _lock_path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json.lock"

    def _has_run(self, run_id: str) -> bool:
        return self._file(run_id).is_file()

    def _read_run(self, run_id: str) -> Run:
        return self._load_doc(run_id).run

    def _load_doc(self, run_id: str) -> RunDoc:
        if not usable_id(run_id):
            raise RunNotFound(run_id)
        path = self._file(run_id)
        try:
            return RunDoc.from_dict(read_json(path))
        except FileNotFoundError:
            raise RunNotFound(run_id) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"run log {path} is malformed ({exc!r})") from exc

    def _save_doc(self, doc: RunDoc) -> None:
        atomic_write_json(self._file(doc.run.id), doc.to_dict())

    def _create_files(self, run: Run) -> None:
        self._save_doc(RunDoc(run))

    def _delete_files(self, run_id: str) -> None:
        remove_file(self._file(run_id))
        fsync_dir(self.root)
        for leftover in self.root.glob(f".tmp-{run_id}.json-*"):  # from killed writers
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _run_ids(self) -> Iterator[str]:
        for path in self.root.glob("*.json"):
            if usable_id(path.stem):
                yield path.stem

    # -- steps and attempts -----------------------------------------------------------------
    def upsert_step(self, run_id: str, step: Step) -> Step:
        return self._change(run_id, lambda d: d.upsert_step(step))

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        return self._change(run_id, lambda d: d.upsert_attempt(step_name, attempt))

    def get_step(self, run_id: str, name: str) -> Step:
        return self._load_doc(run_id).step(name)

    def get_steps(self, run_id: str) -> list[Step]:
        return self._load_doc(run_id).ordered_steps()

    # -- metrics, events, logs --------------------------------------------------------------
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        batch = checked_metrics(metrics)
        self._change(run_id, lambda d: d.metrics.extend(batch))

    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        metrics = self._load_doc(run_id).metrics
        return [m for m in metrics if name is None or m.name == name]

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return summarise(self._load_doc(run_id).metrics)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        batch = [Event(*e) for e in events]
        self._change(run_id, lambda d: d.events.extend(batch))

    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]:
        return tail_since(self._load_doc(run_id).events, since, tail)

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
        lines = [x for x in self._load_doc(run_id).logs if step is None or x.step == step]
        return tail_since(lines, since, tail)

    # -- catalog ----------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self._change(run_id, lambda d: d.add_artifact(artifact))

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return list(self._load_doc(run_id).artifacts.values())
