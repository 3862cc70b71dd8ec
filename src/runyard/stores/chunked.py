"""``chunked:///dir`` — the chunked file-system store: a folder per run, a file per step.

``<dir>/<run_id>/`` holds

* ``RunLog.json`` — the run record, replaced atomically;
* ``StepLog-<quoted name>-<created ns>.json`` — one per step (name quoted with
  ``urllib.parse.quote(name, safe="")``, shortened with a hash when very long), replaced
  atomically; a step keeps the file it was first written to;
* ``metrics.jsonl`` (``["loss",0.3,10,1700000000.1]`` per line), ``events.jsonl``,
  ``logs.jsonl`` and ``catalog.jsonl`` (the later entry for a name and stage wins) — append-only;
* ``batches.jsonl`` — the batches ``append_batch`` appended (see ``chunkbatch``).

Every change holds the run's lock ``<dir>/<run_id>.lock`` (outside the folder, so deleting the
folder never removes a lock someone waits on). Appends cut off a record torn by a killed writer
before writing; readers skip an unterminated last line. A run is deleted by renaming its folder
away (atomic) and then removing it. ``<dir>/index.json`` indexes the runs
(see ``runyard.stores.fileindex``).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from runyard.errors import RunNotFound, StepNotFound, StoreError
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    LogLine,
    Metric,
    RunRecord,
    Step,
    artifact_from_dict,
    artifact_to_dict,
    run_from_dict,
    run_to_dict,
    step_from_dict,
    step_to_dict,
)
from runyard.model import validate as check
from runyard.stores import chunkbatch
from runyard.stores.base import MetricSummary, summarise, tail_since
from runyard.stores.batch import checked_batch
from runyard.stores.doc import RunDoc, checked_metrics
from runyard.stores.filebase import FileStoreBase, stream_items
from runyard.stores.files import (
    append_records,
    atomic_write_json,
    count_records,
    dumps,
    fsync_dir,
    read_json,
    read_json_lines,
    remove_leftovers,
    usable_id,
)
from runyard.stores.streams import MetricColumns

RUN_LOG = "RunLog.json"
METRICS, EVENTS, LOGS, CATALOG = "metrics.jsonl", "events.jsonl", "logs.jsonl", "catalog.jsonl"
STREAM_FILES = {"metrics": METRICS, "events": EVENTS, "logs": LOGS}
STREAMS = (METRICS, EVENTS, LOGS)  # in the order of a batch's parts
MAX_KEY = 150
R = TypeVar("R")


def step_key(name: str) -> str:
    """The step's part of its file name: the quoted name, or a prefix and a hash if too long.

    ``quote`` never writes ``%h``, so a shortened key cannot equal a plain one.
    """
    quoted = quote(name, safe="", errors="surrogatepass")
    if len(quoted) <= MAX_KEY:
        return quoted
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{quoted[:100]}%h{digest}"


def created_ns(step: Step) -> int:
    ns = step.created * 1e9
    return int(ns) if math.isfinite(ns) and ns > 0 else 0


def decoded(path: Path, rows: list[Any], make: Callable[[Any], R]) -> list[R]:
    try:
        return [make(row) for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path} holds a malformed record ({exc!r})") from exc


class ChunkedStore(FileStoreBase[RunDoc]):
    scheme = "chunked"

    def _folder(self, run_id: str) -> Path:
        return self.root / run_id

    # -- the backend primitives -------------------------------------------------------------
    def _lock_path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.lock"

    def _has_run(self, run_id: str) -> bool:
        return (self._folder(run_id) / RUN_LOG).is_file()

    def _read_run(self, run_id: str) -> RunRecord:
        if not usable_id(run_id):
            raise RunNotFound(run_id)
        path = self._folder(run_id) / RUN_LOG
        try:
            return run_from_dict(read_json(path))
        except FileNotFoundError:
            raise RunNotFound(run_id) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"run log {path} is malformed ({exc!r})") from exc

    def _load_doc(self, run_id: str) -> RunDoc:
        return RunDoc(self._read_run(run_id))

    def _save_doc(self, doc: RunDoc) -> None:
        atomic_write_json(self._folder(doc.run.id) / RUN_LOG, run_to_dict(doc.run))

    def _create_files(self, run: RunRecord) -> None:
        folder = self._folder(run.id)
        if folder.exists():  # left by a create that was killed before RunLog.json was written
            self._discard(folder)
        try:
            folder.mkdir()
            fsync_dir(self.root)
        except OSError as exc:
            raise StoreError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        self._save_doc(RunDoc(run))

    def _delete_files(self, run_id: str) -> None:
        self._discard(self._folder(run_id))

    def _discard(self, folder: Path) -> None:
        trash = self.root / f".trash-{folder.name}-{uuid.uuid4().hex}"
        try:
            folder.rename(trash)
            fsync_dir(self.root)
        except OSError as exc:
            raise StoreError(f"cannot remove {folder}: {exc.strerror or exc}") from exc
        for leftover in [trash, *self.root.glob(".trash-*")]:  # others: from killed deleters
            shutil.rmtree(leftover, ignore_errors=True)

    def _run_ids(self) -> Iterator[str]:
        for entry in os.scandir(self.root):
            if entry.is_dir() and usable_id(entry.name):
                yield entry.name

    # -- steps and attempts -----------------------------------------------------------------
    def _step_files(self, run_id: str) -> list[str]:
        """The names of the run's step files."""
        try:
            names = os.listdir(self._folder(run_id))
        except FileNotFoundError:
            raise RunNotFound(run_id) from None
        return [n for n in names if n.startswith("StepLog-") and n.endswith(".json")]

    def _step_file(self, run_id: str, name: str) -> Path | None:
        prefix = f"StepLog-{step_key(name)}-"
        for file_name in self._step_files(run_id):
            if file_name.startswith(prefix) and file_name[len(prefix) : -5].isdigit():
                return self._folder(run_id) / file_name
        return None

    def _read_step(self, path: Path, run_id: str) -> Step:
        try:
            return step_from_dict(read_json(path))
        except FileNotFoundError:
            raise RunNotFound(run_id) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"step log {path} is malformed ({exc!r})") from exc

    def _find_step(self, run_id: str, name: str) -> tuple[Path, Step]:
        self._require(run_id)
        path = self._step_file(run_id, name)
        if path is None:
            raise StepNotFound(run_id, name)
        return path, self._read_step(path, run_id)

    def upsert_step(self, run_id: str, step: Step) -> Step:
        self.upsert_steps(run_id, [step])
        return step

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """Each step to its own file, all under one lock (the last of a name wins)."""
        latest = {step.name: step for step in steps}
        for name in latest:
            check.step_name(name)
        with self._locked(run_id):
            remove_leftovers(self._folder(run_id))
            for step in latest.values():
                path = self._step_file(run_id, step.name) or self._folder(run_id) / (
                    f"StepLog-{step_key(step.name)}-{created_ns(step)}.json"
                )
                atomic_write_json(path, step_to_dict(step))

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        with self._locked(run_id):
            path, step = self._find_step(run_id, step_name)
            step = step.with_attempt(attempt)
            atomic_write_json(path, step_to_dict(step))
        return step

    def get_step(self, run_id: str, name: str) -> Step:
        return self._find_step(run_id, name)[1]

    def get_steps(self, run_id: str) -> list[Step]:
        self._require(run_id)
        folder = self._folder(run_id)
        steps = [self._read_step(folder / name, run_id) for name in self._step_files(run_id)]
        return sorted(steps, key=lambda s: (s.created, s.name))

    # -- append-only files ------------------------------------------------------------------
    def _append(self, run_id: str, stream: str, rows: Sequence[Any]) -> None:
        payload = b"".join(dumps(row) + b"\n" for row in rows)  # encode all before writing
        with self._locked(run_id):
            chunkbatch.settle(self._folder(run_id), STREAMS)
            if payload:
                append_records(self._folder(run_id) / stream, payload)

    def _rows(self, run_id: str, stream: str, make: Callable[[Any], R]) -> list[R]:
        self._require(run_id)
        path = self._folder(run_id) / stream
        return decoded(path, read_json_lines(path), make)

    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self._append(run_id, METRICS, [list(m) for m in checked_metrics(metrics)])

    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        metrics = self._rows(run_id, METRICS, lambda row: Metric(*row))
        return metrics if name is None else [m for m in metrics if m.name == name]

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return summarise(self.read_metrics(run_id))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        self._append(run_id, EVENTS, [list(Event(*e)) for e in events])

    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]:
        return tail_since(self._rows(run_id, EVENTS, lambda row: Event(*row)), since, tail)

    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        self._append(run_id, LOGS, [list(LogLine(*line)) for line in lines])

    def read_logs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        since: float | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        lines = self._rows(run_id, LOGS, lambda row: LogLine(*row))
        return tail_since([x for x in lines if step is None or x.step == step], since, tail)

    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        lines = [dumps(list(item)) + b"\n" for item in stream_items(kind, items)]
        with self._locked(run_id):
            chunkbatch.settle(self._folder(run_id), STREAMS)
            path = self._folder(run_id) / STREAM_FILES[kind]
            missing = lines[max(count_records(path) - start, 0):]
            if missing:
                append_records(path, b"".join(missing))
        return len(missing)

    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool:
        """Once per key, whole or not at all, under the run's lock (see ``chunkbatch``)."""
        batch = checked_batch(key, metrics, events, logs)
        payloads = [b"".join(dumps(list(row)) + b"\n" for row in rows) for rows in batch]
        with self._locked(run_id):
            folder = self._folder(run_id)
            chunkbatch.settle(folder, STREAMS)
            if key in chunkbatch.keys(folder):
                return False
            chunkbatch.append(folder, key, STREAMS, payloads)
        return True

    # -- catalog ----------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self._require(run_id)
        check.artifact_name(artifact.name)
        self._append(run_id, CATALOG, [artifact_to_dict(artifact)])

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        entries = self._rows(run_id, CATALOG, artifact_from_dict)
        latest = {(a.name, a.stage.value): a for a in entries}
        return list(latest.values())

