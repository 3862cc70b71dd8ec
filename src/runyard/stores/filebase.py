"""What the ``file:`` and ``chunked:`` stores share: runs, names, listing and the index.

A backend says where a run's files are and how its run record is read and written; this base
does the rest with the same semantics as ``MemoryStore``. Every change to a run happens under
that run's ``FileLock``: read the run, apply the ``RunDoc`` operation (which checks it), write
the result atomically. Changes that alter the run's index entry also take the index lock and
follow the protocol in ``runyard.stores.fileindex``. Reads take no lock: every file they read
is either replaced atomically or append-only.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from runyard.errors import NameTaken, RunExists, RunNotFound, StoreError
from runyard.model import Event, LogLine, RunRecord, Status
from runyard.model import validate as check
from runyard.stores.base import RunFilter, StoreHelpers, checked_new_run, count_folders
from runyard.stores.doc import RunDoc, checked_metrics
from runyard.stores.fileindex import IndexTable, RunIndex, file_lock, summary
from runyard.stores.files import check_id, usable_id
from runyard.stores.filetokens import FileTokens
from runyard.stores.ordering import INDEXED, check_listing, page_by
from runyard.stores.streams import stream_kind

T = TypeVar("T")
D = TypeVar("D", bound=RunDoc)
Check = Callable[[IndexTable], None]


def stream_items(kind: str, items: Sequence[Any]) -> list[Any]:
    """``items`` of the stream ``kind`` as records, checked (for ``append_missing``)."""
    if stream_kind(kind) == "metrics":
        return checked_metrics(items)
    make = Event if kind == "events" else LogLine
    return [make(*item) for item in items]


class FileStoreBase(FileTokens, StoreHelpers, Generic[D]):
    """A store kept as files under one folder, with an index file beside the runs.

    ``D`` is the document a backend hands to run operations: a ``RunDoc`` holding at least
    the run (and whatever else of the run log lives in the same file).
    """

    scheme = ""

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        self.root = Path(path).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.root}: {exc.strerror}") from exc
        self.url = url or f"{self.scheme}://{self.root.resolve()}"
        self._index = RunIndex(self.root, self._indexable_run, self._scan_runs)

    # -- what a backend provides ------------------------------------------------------------
    @abstractmethod
    def _lock_path(self, run_id: str) -> Path: ...

    @abstractmethod
    def _has_run(self, run_id: str) -> bool: ...

    @abstractmethod
    def _read_run(self, run_id: str) -> RunRecord:
        """The stored run record; RunNotFound when it has no files."""

    @abstractmethod
    def _load_doc(self, run_id: str) -> D:
        """What run-level operations change (the run, and whatever else is in its file)."""

    @abstractmethod
    def _save_doc(self, doc: D) -> None: ...

    @abstractmethod
    def _create_files(self, run: RunRecord) -> None: ...

    @abstractmethod
    def _delete_files(self, run_id: str) -> None: ...

    @abstractmethod
    def _run_ids(self) -> Iterable[str]:
        """Ids of every run with files (for rebuilding the index)."""

    # -- shared machinery -------------------------------------------------------------------
    def _read_run_or_none(self, run_id: str) -> RunRecord | None:
        if not usable_id(run_id):
            return None
        try:
            return self._read_run(run_id)
        except RunNotFound:
            return None

    def _indexable_run(self, run_id: str) -> RunRecord | None:
        """The run for the index; a damaged run log is left out (``get_run`` reports it)."""
        return self._readable_run(run_id, "the index")

    def _readable_run(self, run_id: str, left_out_of: str) -> RunRecord | None:
        """The run, or None when it has no files or its run log is damaged: then a warning
        names the file, the other runs stay listable, ``get_run`` raises the error and
        ``delete_run`` (which reads nothing) still removes it."""
        try:
            return self._read_run_or_none(run_id)
        except StoreError as exc:
            warnings.warn(f"run {run_id} is left out of {left_out_of}: {exc}", stacklevel=3)
            return None

    def _scan_runs(self) -> Iterator[RunRecord]:
        for run_id in self._run_ids():
            run = self._indexable_run(run_id)
            if run is not None:
                yield run

    def _require(self, run_id: str) -> None:
        if not usable_id(run_id) or not self._has_run(run_id):
            raise RunNotFound(run_id)

    @contextlib.contextmanager
    def _locked(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock; RunNotFound if it has no files (checked before and after)."""
        self._require(run_id)
        with file_lock(self._lock_path(run_id)):
            self._require(run_id)
            yield

    def _change(self, run_id: str, op: Callable[[D], T], check: Check | None = None) -> T:
        """Apply ``op`` to the run's document under its lock, then write it back."""
        with self._locked(run_id):
            doc = self._load_doc(run_id)
            before = summary(doc.run)
            result = op(doc)
            self._commit(doc, before, check)
        return result

    def _commit(self, doc: D, before: dict[str, Any], check: Check | None) -> None:
        if check is None and summary(doc.run) == before:
            self._save_doc(doc)
            return
        with self._index.locked() as table:
            if check is not None:
                check(table)
            with self._index.intent(doc.run.id):
                self._save_doc(doc)
                table.put(doc.run)
                self._index.save(table)

    def _name_free(self, table: IndexTable, name: str, run_id: str) -> None:
        if any(o != run_id and self._has_run(o) for o in table.owners(name)):
            raise NameTaken(name)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        run = checked_new_run(run)
        check_id(run.id)
        with file_lock(self._lock_path(run.id)), self._index.locked() as table:
            if self._has_run(run.id):
                raise RunExists(run.id)
            self._name_free(table, run.name, run.id)
            with self._index.intent(run.id):
                self._create_files(run)
                table.put(run)
                self._index.save(table)
        return run

    def get_run(self, run_id: str) -> RunRecord:
        run = self._read_run_or_none(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def get_run_by_name(self, name: str) -> RunRecord:
        for run_id, entry in self._index.snapshot().items():
            if entry.name == name:
                run = self._read_run_or_none(run_id)
                if run is not None and run.name == name:
                    return run
        raise RunNotFound(name)

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
        """Filtered and, in the orders the index holds (created, name, status, kind), ordered
        on the index: only the page's run files are read. The others (started, ended,
        duration, param:) read every matching run's file to order them."""
        order, wanted = check_listing(order_by, after), filter or RunFilter()
        if order not in INDEXED:
            return page_by(self._read_all(self._matching(wanted), wanted), order,
                           newest_first, limit, offset)
        chosen = page_by(self._matching(wanted), order, newest_first, limit, offset, after)
        return self._read_all(chosen, wanted)

    def _read_all(self, entries: Iterable[RunRecord], wanted: RunFilter) -> list[RunRecord]:
        """The runs of index entries, read from their files (those still there, still
        matching)."""
        found = (self._readable_run(entry.id, "the list") for entry in entries)
        return [run for run in found if run is not None and wanted.matches(run)]

    def count_runs(self, filter: RunFilter | None = None) -> int:
        return len(self._matching(filter or RunFilter()))

    def folder_counts(self, filter: RunFilter | None = None) -> dict[str, int]:
        """From the index's summaries: no run file is read."""
        return count_folders(self._matching(filter or RunFilter()))

    def _matching(self, wanted: RunFilter) -> list[RunRecord]:
        """Index entries that match, leaving out any whose run has no files."""
        entries = self._index.snapshot().values()
        return [e for e in entries if wanted.matches(e) and self._has_run(e.id)]

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
        extra = None if metadata is None else dict(metadata)
        kept = None if internals is None else dict(internals)
        more = None if fields is None else dict(fields)
        return self._change(run_id, lambda d: d.set_status(status, reason, expect, now, extra,
                                                           kept, more))

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        return self._change(run_id, lambda d: d.update(fields))

    def add_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        wanted = list(tags)
        return self._change(run_id, lambda d: d.add_tags(wanted))

    def remove_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        unwanted = list(tags)
        return self._change(run_id, lambda d: d.remove_tags(unwanted))

    def merge_metadata(self, run_id: str, data: Mapping[str, Any]) -> RunRecord:
        extra = dict(data)
        return self._change(run_id, lambda d: d.merge_metadata(extra))

    def set_parameters(self, run_id: str, params: Mapping[str, Any]) -> RunRecord:
        extra = dict(params)
        return self._change(run_id, lambda d: d.set_parameters(extra))

    def rename_run(self, run_id: str, new_name: str) -> RunRecord:
        check.run_name(new_name)

        def rename(doc: D) -> RunRecord:
            doc.run = doc.run.replace(name=new_name)
            return doc.run

        return self._change(run_id, rename, lambda t: self._name_free(t, new_name, run_id))

    def delete_run(self, run_id: str) -> None:
        with self._locked(run_id), self._index.locked() as table, self._index.intent(run_id):
            self._delete_files(run_id)
            table.drop(run_id)
            self._index.save(table)
