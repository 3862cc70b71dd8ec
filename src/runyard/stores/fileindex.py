"""The index file of the file stores: ``<dir>/index.json``, run id -> summary.

A summary holds what listing, filtering and name look-ups need (name, folder, kind, status,
tags, created), so they read one file instead of every run. The run files stay the truth; the
index is rebuilt from them whenever it is missing or unreadable.

Keeping the two in step (the write protocol, for every change that alters a summary: create,
rename, delete, status, tags, folder, kind):

1. the writer holds the run's lock, then takes the store-wide ``index.lock`` (always in that
   order, never the reverse);
2. it writes an *intent marker* ``<dir>/.pending/<run_id>`` (fsynced);
3. it writes the run's files, then the index (both atomically);
4. it removes the marker, then releases the index lock.

So while anyone holds the index lock, no summary-changing write is half done, and a marker found
then belongs to a writer that died between steps 2 and 4. Whoever takes the index lock next
re-reads those runs from their files, fixes their entries and drops the markers. Lock-free readers
use the index as it is unless a marker exists, in which case they take the lock (and repair).
A crash can therefore never make a run invisible or leave a stale entry behind. An entry whose
run file is missing (say, removed by hand) is treated as absent by every reader.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from runyard.errors import StoreError, StoreReadOnly
from runyard.model import Kind, RunRecord, Status
from runyard.stores.files import (
    atomic_write_json,
    fsync_dir,
    read_json,
    remove_file,
    remove_leftovers,
    usable_id,
)

INDEX_FORMAT = 1
LOCK_POLL = 0.05  # seconds between attempts on a busy lock (filelock's default)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold the lock file ``path``; a folder this user may not write is ``StoreReadOnly``."""
    lock = FileLock(path, poll_interval=LOCK_POLL)
    try:
        lock.acquire()
    except OSError as exc:  # (permission denied, a read-only file system)
        raise StoreReadOnly(path.parent, f"cannot lock {path}: {exc.strerror or exc}") from exc
    try:
        yield
    finally:
        lock.release()


def summary(run: RunRecord) -> dict[str, Any]:
    """The index entry of a run."""
    return {
        "name": run.name,
        "folder": run.folder,
        "kind": run.kind.value,
        "status": run.status.value,
        "tags": sorted(run.tags),
        "created": run.created,
    }


def summary_run(run_id: str, entry: Mapping[str, Any]) -> RunRecord:
    """A run carrying only the indexed fields: enough for ``RunFilter.matches`` and paging."""
    return RunRecord(
        id=run_id,
        name=str(entry["name"]),
        folder=str(entry["folder"]),
        kind=Kind(entry["kind"]),
        status=Status(entry["status"]),
        tags=frozenset(str(t) for t in entry["tags"]),
        created=float(entry["created"]),
    )


def parse_index(data: Any) -> dict[str, RunRecord] | None:
    """The summaries in a loaded index file, or None when it is not a valid index."""
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        return None
    entries = data.get("runs")
    if not isinstance(entries, dict):
        return None
    try:
        return {rid: summary_run(rid, e) for rid, e in entries.items() if usable_id(rid)}
    except (KeyError, TypeError, ValueError):
        return None


class IndexTable:
    """The index loaded under its lock: look it up, change it, then ``RunIndex.save`` it."""

    def __init__(self, runs: dict[str, RunRecord]) -> None:
        self.runs = runs

    def owners(self, name: str) -> list[str]:
        return [rid for rid, run in self.runs.items() if run.name == name]

    def put(self, run: RunRecord) -> None:
        self.runs[run.id] = summary_run(run.id, summary(run))

    def drop(self, run_id: str) -> None:
        self.runs.pop(run_id, None)


class RunIndex:
    """``index.json``, its lock and the intent markers of one store folder.

    ``read_run(id)`` gives a run from its files (None if absent); ``scan()`` gives every run
    that has files. Both are the store's, and only read.
    """

    def __init__(
        self,
        root: Path,
        read_run: Callable[[str], RunRecord | None],
        scan: Callable[[], Iterable[RunRecord]],
    ) -> None:
        self.path = root / "index.json"
        self.lock_path = root / "index.lock"
        self.pending = root / ".pending"
        self._read_run = read_run
        self._scan = scan

    # -- reading ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, RunRecord]:
        """Every summary, without the lock unless a repair or rebuild is due."""
        if not self._intents():
            runs = self._load()
            if runs is not None:
                return runs
        try:
            with self.locked() as table:
                return dict(table.runs)
        except StoreReadOnly:  # a reader who may not write: repair a copy, keep it to itself
            table = IndexTable(self._load() or self._rebuilt())
            for run_id in self._intents():
                self._reread(table, run_id)
            return table.runs

    def _load(self) -> dict[str, RunRecord] | None:
        try:
            return parse_index(read_json(self.path))
        except (FileNotFoundError, StoreError):
            return None

    def _intents(self) -> list[str]:
        try:
            return [name for name in os.listdir(self.pending) if usable_id(name)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {self.pending}: {exc.strerror or exc}") from exc

    # -- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[IndexTable]:
        """Hold the index lock; the table is repaired (or rebuilt) before it is handed out."""
        with file_lock(self.lock_path):
            runs = self._load()
            table = IndexTable(runs if runs is not None else self._rebuilt())
            if runs is None:
                self.save(table)
            self._repair(table)
            yield table

    def save(self, table: IndexTable) -> None:
        entries = {rid: summary(run) for rid, run in sorted(table.runs.items())}
        atomic_write_json(self.path, {"format": INDEX_FORMAT, "runs": entries})

    @contextlib.contextmanager
    def intent(self, run_id: str) -> Iterator[None]:
        """Mark ``run_id`` as being written; the mark stays if the body fails or dies."""
        marker = self.pending / run_id
        try:
            self.pending.mkdir(exist_ok=True)
            marker.touch()
            fsync_dir(self.pending)
        except OSError as exc:
            raise StoreError(f"cannot write {marker}: {exc.strerror or exc}") from exc
        yield
        remove_file(marker)

    def _rebuilt(self) -> dict[str, RunRecord]:
        runs = {run.id: run for run in self._scan()}
        return {rid: summary_run(rid, summary(run)) for rid, run in runs.items()}

    def _reread(self, table: IndexTable, run_id: str) -> None:
        run = self._read_run(run_id)
        if run is None:
            table.drop(run_id)
        else:
            table.put(run)

    def _repair(self, table: IndexTable) -> None:
        """Re-read the runs whose writers died mid-change (see the module docstring)."""
        stale = self._intents()
        if not stale:
            return
        for run_id in stale:
            self._reread(table, run_id)
        self.save(table)
        for run_id in stale:
            remove_file(self.pending / run_id)
        remove_leftovers(self.path.parent, self.path.name)
