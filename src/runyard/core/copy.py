"""Copy every run of one store into another, blobs included; safe to repeat and to resume.

A run missing from the destination is created in one ``create_run`` with its final fields (id,
name, timestamps and status exactly as in the source), then its steps, metrics, events, logs
and catalog are written. A run already there is brought up to date instead: fields are updated,
tags, metadata and parameters merged, steps and catalog entries upserted where they differ, and
metrics, events and logs, which are append-only and ordered, get only the tail the destination
lacks. So a copy run twice writes nothing the second time, and a copy killed halfway completes
when run again. Nothing is deleted from the destination.

Before writing anything the copy checks for conflicts: a different run in the destination with
the same name as a source run, or a run whose destination status cannot reach the source status
through the lifecycle. It raises one ``ConflictError`` naming them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from runyard.blobs import BlobStore
from runyard.blobs.digests import DIGEST
from runyard.core.context import context_of
from runyard.core.copyregistry import copy_codespecs
from runyard.errors import (
    BlobNotFound,
    ConflictError,
    NameTaken,
    RunExists,
    RunNotFound,
    StoreError,
)
from runyard.model import Artifact, RunRecord, Status, Step, status_path
from runyard.stores import RunStore, open_store
from runyard.stores.base import UPDATABLE

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CopyReport:
    """What a copy did: runs created, runs brought up to date, runs already equal, blobs
    written to the destination blob store, and catalog entries whose blob the source lacks;
    ``surplus`` says where the destination holds more metrics, events or log lines of a run
    than the source (written twice by some earlier copy, or added there since): a copy never
    deletes, so it cannot make those equal, and says so instead of calling them unchanged."""

    copied: int = 0
    updated: int = 0
    unchanged: int = 0
    blobs_copied: int = 0
    blobs_missing: int = 0
    surplus: tuple[str, ...] = ()


@dataclass
class _Tally:
    copied: int = 0
    updated: int = 0
    unchanged: int = 0
    blobs_copied: int = 0
    blobs_missing: int = 0
    surplus: list[str] = field(default_factory=list)

    def report(self) -> CopyReport:
        return CopyReport(self.copied, self.updated, self.unchanged, self.blobs_copied,
                          self.blobs_missing, tuple(self.surplus))


def copy_store(
    src: RunStore,
    dst: RunStore,
    src_blobs: BlobStore,
    dst_blobs: BlobStore,
    *,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every run of ``src`` (with its blobs) into ``dst``; see the module docstring.

    ``progress(done, total)`` is called once before the first run and after each run.
    """
    runs = src.list_runs(newest_first=False)
    existing = {r.id: r for r in dst.list_runs()}
    check_conflicts(src, dst, runs, existing)
    copier = _Copier(src, dst, src_blobs, dst_blobs)
    if progress is not None:
        progress(0, len(runs))
    for done, run in enumerate(runs, start=1):
        copier.copy_run(run, existing.get(run.id))
        if progress is not None:
            progress(done, len(runs))
    copy_codespecs(src, dst)  # (see runyard.core.copyregistry: buffers stay)
    return copier.tally.report()


def copy_run(
    src: RunStore, dst: RunStore, src_blobs: BlobStore, dst_blobs: BlobStore, run_id: str
) -> CopyReport:
    """Copy the one run ``run_id`` of ``src`` into ``dst`` as ``copy_store`` would, looking up
    only that run (and any run holding its name) in the destination."""
    run = src.get_run(run_id)
    existing = {r.id: r for r in _holders(dst, run)}
    check_conflicts(src, dst, [run], existing)
    copier = _Copier(src, dst, src_blobs, dst_blobs)
    copier.copy_run(run, existing.get(run.id))
    return copier.tally.report()


def _holders(dst: RunStore, run: RunRecord) -> list[RunRecord]:
    """The destination's run with ``run``'s id and the one with its name, where they exist."""
    found = []
    for lookup, key in ((dst.get_run, run.id), (dst.get_run_by_name, run.name)):
        with suppress(RunNotFound):
            found.append(lookup(key))
    return found


def copy_store_urls(src_url: str, dst_url: str, progress: Progress | None = None) -> CopyReport:
    """Open the stores at both URLs and their blob stores, copy, and close the stores."""
    src = open_store(src_url)
    try:
        dst = open_store(dst_url)
        try:
            return copy_store(src, dst, context_of(src).blobs, context_of(dst).blobs,
                              progress=progress)
        finally:
            dst.close()
    finally:
        src.close()


# -- conflicts ------------------------------------------------------------------------------
def check_conflicts(
    src: RunStore, dst: RunStore, runs: Sequence[RunRecord], existing: dict[str, RunRecord]
) -> None:
    """Raise one ``ConflictError`` listing every run the copy could not make equal."""
    names = {r.name: r.id for r in existing.values()}
    problems = []
    for run in runs:
        owner = names.get(run.name, run.id)
        if owner != run.id:
            problems.append(
                f"run {run.id} named {run.name!r} in {src.url} clashes with a different run "
                f"{owner} of that name in {dst.url}"
            )
        there = existing.get(run.id)
        if there is not None and status_path(there.status, run.status) is None:
            problems.append(
                f"run {run.id} ({run.name!r}) is {run.status.value} in {src.url} but "
                f"{there.status.value} in {dst.url}, which cannot become {run.status.value}"
            )
    if problems:
        raise ConflictError(
            f"cannot copy {src.url} into {dst.url}: " + "; ".join(problems)
            + "; rename or delete one side and copy again (nothing was written)"
        )


def _timed_path(run: RunRecord, there: RunRecord) -> list[Status]:
    """The transitions to apply to ``there``; through ``running`` when that is how the source
    got its ``started`` time, so the copy gets it too."""
    direct = status_path(there.status, run.status) or []
    if run.started is None or there.started is not None or Status.RUNNING in direct:
        return direct
    first = status_path(there.status, Status.RUNNING)
    rest = status_path(Status.RUNNING, run.status)
    return direct if first is None or rest is None else first + rest


# -- one run --------------------------------------------------------------------------------
class _Copier:
    def __init__(self, src: RunStore, dst: RunStore, src_blobs: BlobStore,
                 dst_blobs: BlobStore) -> None:
        self.src, self.dst = src, dst
        self.src_blobs, self.dst_blobs = src_blobs, dst_blobs
        self.same_blobs = _same_root(src_blobs, dst_blobs)
        self.batch = dst_blobs.batch()
        self.tally = _Tally()

    def copy_run(self, run: RunRecord, there: RunRecord | None) -> None:
        try:
            self._copy_run(run, there)
        except BaseException:
            self.batch.discard()  # the temporary files of blobs not committed yet
            raise

    def _copy_run(self, run: RunRecord, there: RunRecord | None) -> None:
        if there is None:
            try:
                self.dst.create_run(run)
            except (RunExists, NameTaken) as exc:  # another copy made it first (a database
                there = self._made_meanwhile(run, exc)  # may report either): update it
            else:
                self._copy_content(run)
                self.tally.copied += 1
                return
        changed = self._update_fields(run, there)
        changed = self._copy_content(run) or changed
        if changed:
            self.tally.updated += 1
        else:
            self.tally.unchanged += 1

    def _made_meanwhile(self, run: RunRecord, refused: Exception) -> RunRecord:
        """The run another copy created since the copy looked; else the refusal stands."""
        try:
            return self.dst.get_run(run.id)
        except RunNotFound:
            raise refused from None

    def _copy_content(self, run: RunRecord) -> bool:
        steps = self.src.get_steps(run.id)
        changed = self._copy_steps(run.id, steps)
        changed = self._copy_tail(run.id, "metrics") or changed
        changed = self._copy_tail(run.id, "events") or changed
        changed = self._copy_tail(run.id, "logs") or changed
        self._copy_referenced(run, steps)
        return self._copy_artifacts(run.id) or changed

    # -- run fields ---------------------------------------------------------------------------
    def _update_fields(self, run: RunRecord, there: RunRecord) -> bool:
        before = there
        if there.name != run.name:
            there = self.dst.rename_run(run.id, run.name)
        fields = {f: getattr(run, f) for f in sorted(UPDATABLE)
                  if getattr(run, f) != getattr(there, f)}
        if fields:
            there = self.dst.update_run(run.id, **fields)
        there = self._merge(run, there)
        there = self._move_status(run, there)
        return there != before

    def _merge(self, run: RunRecord, there: RunRecord) -> RunRecord:
        if not run.tags <= there.tags:
            there = self.dst.add_tags(run.id, sorted(run.tags - there.tags))
        if _missing(run.metadata, there.metadata):
            there = self.dst.merge_metadata(run.id, run.metadata)
        if _missing(run.parameters, there.parameters):
            there = self.dst.set_parameters(run.id, run.parameters)
        return there

    def _move_status(self, run: RunRecord, there: RunRecord) -> RunRecord:
        """Take the destination's status to the source's; when another copy moves it at the
        same time (``expect`` fails), go on from wherever it got to."""
        for _ in range(len(Status)):
            try:
                return self._hops(run, there)
            except ConflictError:
                there = self.dst.get_run(run.id)
        return self._hops(run, there)

    def _hops(self, run: RunRecord, there: RunRecord) -> RunRecord:
        for hop in _timed_path(run, there):
            reason = run.status_reason if hop is run.status else None
            there = self.dst.update_status(run.id, hop, reason, expect=there.status,
                                           now=_hop_time(run, hop))
        return there

    # -- steps and append-only streams ------------------------------------------------------
    def _copy_steps(self, run_id: str, steps: list[Step]) -> bool:
        there = {s.name: s for s in self.dst.get_steps(run_id)}
        changed = False
        for step in steps:
            if there.get(step.name) != step:
                self.dst.upsert_step(run_id, step)
                changed = True
        return changed

    def _copy_tail(self, run_id: str, kind: str) -> bool:
        have = _count(self.dst, kind, run_id)
        if kind == "metrics" and self._at_least(run_id, kind, have, _count(self.src, kind,
                                                                           run_id)):
            return False  # summaries count without reading every point
        items = _read(self.src, kind, run_id)
        if self._at_least(run_id, kind, have, len(items)):
            return False
        missing = items[have:]
        # only what the destination still lacks when it is written: another copy at the same
        # time may have written some of it since ``have`` was counted
        return bool(missing) and self.dst.append_missing(run_id, kind, missing, have) > 0

    def _at_least(self, run_id: str, kind: str, have: int, total: int) -> bool:
        """Whether the destination has all ``total`` rows; more is noted as ``surplus``."""
        if have > total:
            self.tally.surplus.append(f"run {run_id} has {have} {kind} in {self.dst.url}, "
                                      f"{total} in {self.src.url}")
        return have >= total

    # -- catalog and blobs ------------------------------------------------------------------
    def _copy_artifacts(self, run_id: str) -> bool:
        there = {(a.name, a.stage): a for a in self.dst.list_artifacts(run_id)}
        artifacts = self.src.list_artifacts(run_id)
        for artifact in artifacts:
            self._copy_blob(artifact)  # also restores a blob the destination lost
        self._commit_blobs()  # durable, all at once, before any entry names them
        changed = False
        for artifact in artifacts:
            if there.get((artifact.name, artifact.stage)) != artifact:
                self.dst.add_artifact(run_id, artifact)
                changed = True
        return changed

    def _copy_referenced(self, run: RunRecord, steps: list[Step]) -> None:
        """Blobs the run's internals or steps name without a catalog entry (a workflow's plan,
        DAG document, results and task-run values kept as blobs), where the source has them:
        a digest of a value kept inline names no blob and is passed over."""
        docs = [run.internals, *(s.metadata for s in steps),
                *(a.outputs for s in steps for a in s.attempts)]
        for digest in sorted(_digests(docs)):
            if self.same_blobs or not self.src_blobs.exists(digest):
                continue
            self._copy_blob_digest(digest)
        self._commit_blobs()

    def _copy_blob(self, artifact: Artifact) -> None:
        self._copy_blob_digest(artifact.hash)

    def _copy_blob_digest(self, digest: str) -> None:
        """Copy one blob into the batch (checked against its digest while copied)."""
        if self.same_blobs or digest in self.batch or self.dst_blobs.exists(digest):
            return
        try:
            with self.src_blobs.open(digest) as stream:
                self.batch.put_blob(stream, expect=digest)  # a link where it may be
        except BlobNotFound:
            self.tally.blobs_missing += 1
            return
        self.tally.blobs_copied += 1

    def _commit_blobs(self) -> None:
        """Make the blobs copied so far durable together (one sync, not two per blob)."""
        failed = self.batch.commit()
        if failed:
            digest, why = next(iter(failed.items()))
            raise StoreError(f"cannot copy blob {digest} into {self.dst_blobs.root}: {why}; "
                             "check the disk and run the copy again (it resumes)")


def _digests(docs: list[Any]) -> set[str]:
    """Every string in ``docs`` (JSON-like, walked without recursion) that is a blob digest."""
    found: set[str] = set()
    stack = list(docs)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) >= 64 and DIGEST.match(item):
                found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _read(store: RunStore, kind: str, run_id: str) -> list[Any]:
    reader: Callable[[str], list[Any]] = getattr(store, f"read_{kind}")
    return reader(run_id)


def _count(store: RunStore, kind: str, run_id: str) -> int:
    if kind == "metrics":
        return sum(s.count for s in store.metric_summaries(run_id))
    return len(_read(store, kind, run_id))


def _missing(wanted: dict[str, Any], have: dict[str, Any]) -> bool:
    """Whether merging ``wanted`` into ``have`` would change it."""
    return any(k not in have or have[k] != v for k, v in wanted.items())


def _hop_time(run: RunRecord, hop: Status) -> float | None:
    """The time to record for a transition so the copy's timestamps equal the source's."""
    if hop.is_final:
        return run.ended
    if hop is Status.RUNNING:
        return run.started
    return None


def _same_root(a: BlobStore, b: BlobStore) -> bool:
    return a.root.expanduser().resolve() == b.root.expanduser().resolve()
