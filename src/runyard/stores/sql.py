"""``SqlStore``: the ``RunStore`` operations written once over SQL, for SQLite and PostgreSQL.

A backend supplies a ``Dialect`` and ``_transaction(write)``, a context manager that yields a
``Tx`` and commits when the block ends (rolling back on any error). Every read-check-write
happens inside one write transaction with the run's row locked (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``SELECT ... FOR NO KEY UPDATE``), so concurrent writers never lose an update and
status transitions are checked against the current row.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from runyard.errors import (
    NameTaken,
    RunExists,
    RunNotFound,
    StepNotFound,
    StoreError,
)
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    LogLine,
    Metric,
    RunRecord,
    Stage,
    Status,
    Step,
    step_from_dict,
)
from runyard.model import validate as check
from runyard.stores import sqlmetrics
from runyard.stores.base import (
    MetricSummary,
    StoreHelpers,
    checked_new_run,
)
from runyard.stores.doc import RunDoc
from runyard.stores.sqllisting import SqlListing
from runyard.stores.sqlpositions import SqlPositions
from runyard.stores.sqlregistry import SqlRegistry
from runyard.stores.sqlschema import (
    APPEND,
    DELETE_TAG,
    IN_RANGE,
    INSERT_RUN,
    INSERT_TAG,
    RANGE_TABLES,
    RUN_TABLES,
    SELECT_RUN,
    UPSERT_ARTIFACT,
    UPSERT_STEP,
    Dialect,
    Row,
    Tx,
    id_range,
    row_run,
    row_values,
    run_changes,
    run_row,
    storable_fields,
)
from runyard.stores.sqltokens import SqlTokens
from runyard.stores.sqlupgrade import ensure_schema, schema_current
from runyard.stores.stepjson import step_json

T = TypeVar("T")


class SqlStore(SqlListing, SqlPositions, SqlRegistry, SqlTokens, StoreHelpers):
    url: str
    dialect: Dialect

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]:
        """A transaction (``write``: one that may write, taking the write lock where needed)."""

    def _open_schema(self) -> None:
        """Make sure the tables are there: a read when they are (the usual case), else the
        idempotent creation (or upgrade) in a write transaction."""
        try:
            with self._transaction(False) as tx:
                if schema_current(tx):
                    return
        except StoreError:
            pass  # no tables yet (or unreadable): the write below creates them or says why
        with self._transaction(True) as tx:
            ensure_schema(tx)

    # -- helpers ----------------------------------------------------------------------------
    def _load(self, tx: Tx, run_id: str, lock: str = "") -> RunRecord:
        return self._load_row(tx, run_id, lock)[0]

    def _load_row(self, tx: Tx, run_id: str, lock: str = "") -> tuple[RunRecord, Row]:
        """The run, and its row as read."""
        row = tx.one(f"{SELECT_RUN} WHERE r.id = ?{lock}", (run_id,))
        if row is None:
            raise RunNotFound(run_id)
        return row_run(row, self.dialect), row

    def _seq(self, tx: Tx, run_id: str, lock: str = "") -> int:
        """The run's number, which places its rows in the append-only tables.

        Also how an operation checks that the run exists and, given a ``lock``, locks its row.
        """
        row = tx.one(f"SELECT seq FROM runs WHERE id = ?{lock}", (run_id,))
        if row is None:
            raise RunNotFound(run_id)
        return int(row[0])

    def _write(self, tx: Tx, old: RunRecord, new: RunRecord, row: Row | None = None) -> None:
        """Write the columns that changed from ``old`` (read as ``row``, if given)."""
        sets, values = run_changes(old, new, self.dialect, row)
        if sets:
            with self._unique(new):
                tx.run(f"UPDATE runs SET {sets} WHERE id = ?", (*values, new.id))
        if new.tags is not old.tags:
            tx.many(INSERT_TAG, [(t, new.id) for t in sorted(new.tags - old.tags)])
            tx.many(DELETE_TAG, [(t, new.id) for t in sorted(old.tags - new.tags)])

    @contextmanager
    def _unique(self, run: RunRecord) -> Iterator[None]:
        """Map a unique violation on ``runs`` (a concurrent writer won) to its conflict."""
        try:
            yield
        except self.dialect.unique_error as exc:
            if "name" in str(exc):
                raise NameTaken(run.name) from None
            raise RunExists(run.id) from None

    def _edit(self, run_id: str, change: Callable[[RunDoc], T]) -> T:
        """Apply a ``RunDoc`` operation to the locked current run and write what changed."""
        with self._transaction(True) as tx:
            old, row = self._load_row(tx, run_id, self.dialect.lock_edit)
            doc = RunDoc(old)
            result = change(doc)
            if doc.run is not old:
                self._write(tx, old, doc.run, row)
        return result

    def _rows(self, sql: str, run_id: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one run's data; ``sql`` takes the run id first."""
        with self._transaction(False) as tx:
            self._seq(tx, run_id)
            return tx.all(sql, (run_id, *params))

    def _range_rows(self, sql: str, run_id: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of an append-only table; ``sql`` takes the run's id range first."""
        with self._transaction(False) as tx:
            return tx.all(sql, (*id_range(self._seq(tx, run_id)), *params))

    def _append(self, table: str, run_id: str, flat: list[Any]) -> None:
        """Append rows (``row_values``) to ``table``, numbered on from the run's last row there.

        With the run's row locked (PostgreSQL) or the database's write lock held (SQLite), so
        two writers never take the same ids.
        """
        width = len(APPEND[table])
        count = len(flat) // width
        with self._transaction(True) as tx:
            low, high = id_range(self._seq(tx, run_id, self.dialect.lock_edit))
            top = tx.one(f"SELECT MAX(id) FROM {table} WHERE {IN_RANGE}", (low, high))
            first = low if top is None or top[0] is None else int(top[0]) + 1
            if first + count - 1 > high:
                raise StoreError(f"run {run_id} has no room for {count} more rows in {table}")
            flat[::width] = range(first, first + count)
            tx.append(table, flat)

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        run = checked_new_run(run)
        row = run_row(run, self.dialect)
        with self._transaction(True) as tx:
            taken = tx.all("SELECT id FROM runs WHERE id = ? OR name = ?", (run.id, run.name))
            if taken:
                raise RunExists(run.id) if (run.id,) in taken else NameTaken(run.name)
            with self._unique(run):
                tx.run(INSERT_RUN, row)
            tx.many(INSERT_TAG, [(t, run.id) for t in sorted(run.tags)])
        return run

    def get_run(self, run_id: str) -> RunRecord:
        with self._transaction(False) as tx:
            return self._load(tx, run_id)

    def get_run_by_name(self, name: str) -> RunRecord:
        with self._transaction(False) as tx:
            row = tx.one(f"{SELECT_RUN} WHERE r.name = ?", (name,))
        if row is None:
            raise RunNotFound(name)
        return row_run(row, self.dialect)

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
        more = None if fields is None else storable_fields(dict(fields))
        return self._edit(run_id, lambda doc: doc.set_status(status, reason, expect, now,
                                                             metadata, internals, more))

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        return self._edit(run_id, lambda doc: doc.update(storable_fields(fields)))

    def add_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        tags = list(tags)
        return self._edit(run_id, lambda doc: doc.add_tags(tags))

    def remove_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        tags = list(tags)
        return self._edit(run_id, lambda doc: doc.remove_tags(tags))

    def merge_metadata(self, run_id: str, data: Mapping[str, Any]) -> RunRecord:
        return self._edit(run_id, lambda doc: doc.merge_metadata(dict(data)))

    def set_parameters(self, run_id: str, params: Mapping[str, Any]) -> RunRecord:
        return self._edit(run_id, lambda doc: doc.set_parameters(dict(params)))

    def rename_run(self, run_id: str, new_name: str) -> RunRecord:
        check.run_name(new_name)
        with self._transaction(True) as tx:
            old = self._load(tx, run_id, self.dialect.lock_edit)
            holder = tx.one("SELECT id FROM runs WHERE name = ?", (new_name,))
            if holder is not None and holder[0] != run_id:
                raise NameTaken(new_name)
            new = old.replace(name=new_name)
            self._write(tx, old, new)
        return new

    def delete_run(self, run_id: str) -> None:
        with self._transaction(True) as tx:
            run = self._load(tx, run_id, self.dialect.lock_delete)
            ids = id_range(self._seq(tx, run_id))
            tx.many(DELETE_TAG, [(t, run_id) for t in sorted(run.tags)])
            for table in RUN_TABLES:
                tx.run(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            for table in RANGE_TABLES:
                tx.run(f"DELETE FROM {table} WHERE {IN_RANGE}", ids)
            tx.run("DELETE FROM runs WHERE id = ?", (run_id,))

    # -- steps ------------------------------------------------------------------------------
    def _store_step(self, tx: Tx, run_id: str, step: Step) -> None:
        doc = step_json(step, self.dialect.encode_json)
        tx.run(UPSERT_STEP, (run_id, step.name, step.created, doc))

    def _step(self, tx: Tx, run_id: str, name: str, lock: str = "") -> Step:
        sql = f"SELECT doc FROM steps WHERE run_id = ? AND name = ?{lock}"
        row = tx.one(sql, (run_id, name))
        if row is None:
            raise StepNotFound(run_id, name)
        return step_from_dict(self.dialect.load_json(row[0]))

    def upsert_step(self, run_id: str, step: Step) -> Step:
        self.upsert_steps(run_id, [step])
        return step

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        """All of ``steps`` in one write transaction (a workflow records task runs in batches),
        each checked and encoded by ``step_json`` first, so a bad one writes none."""
        encode = self.dialect.encode_json
        docs = [(s.name, s.created, step_json(s, encode)) for s in steps]
        with self._transaction(True) as tx:
            self._seq(tx, run_id, self.dialect.lock_share)
            tx.upsert_steps(run_id, docs)

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        with self._transaction(True) as tx:
            self._seq(tx, run_id, self.dialect.lock_share)
            step = self._step(tx, run_id, step_name, self.dialect.lock_edit).with_attempt(attempt)
            self._store_step(tx, run_id, step)
        return step

    def get_step(self, run_id: str, name: str) -> Step:
        with self._transaction(False) as tx:
            self._seq(tx, run_id)
            return self._step(tx, run_id, name)

    def get_steps(self, run_id: str) -> list[Step]:
        rows = self._rows("SELECT doc FROM steps WHERE run_id = ?", run_id)
        steps = [step_from_dict(self.dialect.load_json(row[0])) for row in rows]
        return sorted(steps, key=lambda s: (s.created, s.name))

    # -- metrics, events, logs --------------------------------------------------------------
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self._append_metrics(run_id, *sqlmetrics.packed_batch(metrics))

    def append_metric_columns(
        self, run_id: str, names: Sequence[str], values: Sequence[float],
        steps: Sequence[int | None], times: Sequence[float],
    ) -> None:
        """The batch packed straight from its columns (``sqlmetrics.packed_columns`` checks
        them): no record per value is made."""
        self._append_metrics(
            run_id, *sqlmetrics.packed_columns(list(names), list(values), list(steps),
                                               list(times)))

    def _append_metrics(self, run_id: str, size: int, packed: list[Row]) -> None:
        """Write a batch's chunks after the run's last (under its lock: one writer at a time)."""
        with self._transaction(True) as tx:
            low, high = id_range(self._seq(tx, run_id, self.dialect.lock_edit))
            if packed:
                sqlmetrics.insert(tx, low, high, size, packed)

    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        with self._transaction(False) as tx:
            low, high = id_range(self._seq(tx, run_id))
            return sqlmetrics.read(tx, low, high, name)

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        with self._transaction(False) as tx:
            return sqlmetrics.summaries(tx, *id_range(self._seq(tx, run_id)))

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        self._append("events", run_id, row_values([Event(*e) for e in events]))

    def read_events(
        self, run_id: str, *, since: float | None = None, tail: int | None = None
    ) -> list[Event]:
        rows = self._tail("SELECT time, message, level FROM events", run_id, {}, since, tail)
        return [Event(*row) for row in rows]

    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        self._append("logs", run_id, row_values([LogLine(*line) for line in lines]))

    def read_logs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        since: float | None = None,
        tail: int | None = None,
    ) -> list[LogLine]:
        where = {} if step is None else {"step = ?": step}
        rows = self._tail("SELECT time, text, stream, step FROM logs", run_id, where, since, tail)
        return [LogLine(*row) for row in rows]

    def _tail(
        self,
        select: str,
        run_id: str,
        where: dict[str, Any],
        since: float | None,
        tail: int | None,
    ) -> list[Row]:
        """Rows in append order; with ``tail``, only the last ones, read newest first."""
        if since is not None:
            where = {**where, "time >= ?": since}
        sql = " ".join([select, "WHERE", IN_RANGE, *(f"AND {c}" for c in where), "ORDER BY id"])
        if tail is None:
            return self._range_rows(sql, run_id, list(where.values()))
        rows = self._range_rows(sql + " DESC LIMIT ?", run_id, [*where.values(), max(tail, 0)])
        return rows[::-1]

    # -- catalog ----------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self.add_artifacts(run_id, [artifact])

    def add_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        """Every entry in one transaction (a run saving many files writes its catalog once)."""
        rows = [(run_id, check.artifact_name(a.name), Stage(a.stage).value, a.hash, a.size,
                 a.time, a.step, a.category) for a in artifacts]
        if rows:
            with self._transaction(True) as tx:
                self._seq(tx, run_id, self.dialect.lock_share)
                tx.many(UPSERT_ARTIFACT, rows)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        sql = "SELECT name, hash, size, stage, time, step, category FROM artifacts"
        rows = self._rows(sql + " WHERE run_id = ? ORDER BY id", run_id)
        return [Artifact(n, h, size, Stage(st), t, s, c) for n, h, size, st, t, s, c in rows]

