"""What the SQL backends share: the schema, dialects, row <-> record conversion, filter SQL.

Statements are written once with ``?`` placeholders; a ``Dialect`` turns them into its driver's
form and says how the two databases differ (column types, locking clauses, JSON handling).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import chain
from typing import Any

from runyard.errors import StoreError, ValidationError
from runyard.model import Kind, Owner, RunRecord, Status, run_from_dict
from runyard.model.codec import owner_from_dict, owner_to_dict
from runyard.stores import sqlmetrics
from runyard.stores.base import RunFilter

SCHEMA_VERSION = 6  # 2: metrics in chunks (``sqlmetrics``), no longer one row per value;
# 3: steps in a rowid table (a step's ~1 KB document overflowed WITHOUT ROWID pages);
# 4: a run's ``internals`` in a column of its own (a workflow's DAG, plan and results had
# been kept in its metadata and config: ``sqlupgrade`` moves them);
# 5: the registry (codespecs, buffers and their chunks), kept in the run store;
# 6: the keys of appended batches (``append_batch``) and a server's API tokens
Row = tuple[Any, ...]

# The append-only tables (metric chunks, events, logs) hold no run id: a row's id is in its
# run's own range, ``runs.seq * SPAN`` up to the next run's, counting up in append order. Reading
# a run's rows, its tail, or deleting them is a range scan of the primary key, and appending needs
# no second index to update (which halves SQLite's insert rate).
SPAN = 1 << 36  # rows per run and table; 2**27 runs fit in a signed 64-bit id
MAX_SEQ = (1 << 63) // SPAN - 1

# A step's document is ~1 KB: too large for a WITHOUT ROWID table, whose rows SQLite keeps in
# the primary key's b-tree (it spills them to overflow pages: 3x the upsert time and file size).
# So the rows sit in a rowid table and (run_id, name) is a unique index beside it.
STEPS_TABLE = """CREATE TABLE {table} (id {serial} PRIMARY KEY, run_id {key} NOT NULL,
    name {key} NOT NULL, created {real}, doc {json} NOT NULL, UNIQUE (run_id, name))"""
STEP_COLUMNS = "run_id, name, created, doc"

# {key}: text compared by code point (ids, names, folders, tags sort as in Python)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runyard_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        seq {serial} PRIMARY KEY, id {key} NOT NULL UNIQUE, name {key} NOT NULL UNIQUE,
        folder {key} NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, status_reason TEXT,
        description TEXT, created {real} NOT NULL, started {real}, ended {real},
        heartbeat {real}, origin TEXT, tags {json} NOT NULL, metadata {json} NOT NULL,
        parameters {json} NOT NULL, owner {json}, code {json}, environment {json} NOT NULL,
        config {json} NOT NULL, resources {json} NOT NULL, internals {json} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status, id)",
    "CREATE INDEX IF NOT EXISTS runs_folder ON runs (folder, id)",
    "CREATE INDEX IF NOT EXISTS runs_created ON runs (created)",
    """CREATE TABLE IF NOT EXISTS run_tags (tag {key} NOT NULL, run_id {key} NOT NULL,
        PRIMARY KEY (tag, run_id)){without_rowid}""",
    STEPS_TABLE.replace("{table}", "IF NOT EXISTS steps"),
    sqlmetrics.CHUNK_TABLE,
    """CREATE TABLE IF NOT EXISTS events (id {int} PRIMARY KEY, time {real}, message TEXT,
        level TEXT)""",
    """CREATE TABLE IF NOT EXISTS logs (id {int} PRIMARY KEY, step TEXT, stream TEXT,
        time {real}, text TEXT)""",
    "CREATE INDEX IF NOT EXISTS logs_step ON logs (step, id)",
    """CREATE TABLE IF NOT EXISTS artifacts (id {serial} PRIMARY KEY, run_id {key} NOT NULL,
        name TEXT NOT NULL, stage TEXT NOT NULL, hash TEXT NOT NULL, size {int} NOT NULL,
        time {real}, step TEXT, category TEXT, UNIQUE (run_id, name, stage))""",
    # the registry: codespecs, buffers and their chunks (see ``runyard.stores.sqlregistry``)
    """CREATE TABLE IF NOT EXISTS registry_versions (kind TEXT NOT NULL, name {key} NOT NULL,
        latest {int} NOT NULL, PRIMARY KEY (kind, name))""",
    """CREATE TABLE IF NOT EXISTS codespecs (name {key} NOT NULL, version {int} NOT NULL,
        created {real} NOT NULL, digest TEXT NOT NULL, spec {json} NOT NULL,
        PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS buffers (id {key} PRIMARY KEY, created {real} NOT NULL,
        tags {json} NOT NULL, state TEXT NOT NULL, size {int} NOT NULL, parts {int} NOT NULL,
        run_id TEXT, owner {json}, reason TEXT)""",
    """CREATE TABLE IF NOT EXISTS buffer_chunks (buffer_id {key} NOT NULL, part {int} NOT NULL,
        seq {int} NOT NULL, digest TEXT, size {int} NOT NULL,
        PRIMARY KEY (buffer_id, part, seq)){without_rowid}""",
    # what ``append_batch`` appended, so a batch sent again is not appended twice
    """CREATE TABLE IF NOT EXISTS batch_keys (run_id {key} NOT NULL, batch {key} NOT NULL,
        PRIMARY KEY (run_id, batch)){without_rowid}""",
    """CREATE TABLE IF NOT EXISTS tokens (name {key} PRIMARY KEY, digest TEXT NOT NULL UNIQUE,
        read_only {int} NOT NULL, created {real} NOT NULL, revoked {real})""",
)
# keyed by run_id (run_tags are deleted tag by tag)
RUN_TABLES = ("steps", "artifacts", "batch_keys")
RANGE_TABLES = ("metric_chunks", "events", "logs")  # keyed by the run's id range

RUN_COLUMNS = (
    "id", "name", "folder", "kind", "status", "status_reason", "description", "created",
    "started", "ended", "heartbeat", "origin",
    # the JSON columns, from here on
    "tags", "metadata", "parameters", "owner", "code", "environment", "config", "resources",
    "internals",
)
FIRST_JSON = RUN_COLUMNS.index("tags")
RUN_FIELDS = ", ".join("r." + c for c in RUN_COLUMNS)
SELECT_RUN = f"SELECT {RUN_FIELDS} FROM runs r"
INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
UPDATE_RUN = (
    "UPDATE runs SET " + ", ".join(f"{c} = ?" for c in RUN_COLUMNS[1:]) + " WHERE id = ?"
)
INSERT_TAG = "INSERT INTO run_tags (tag, run_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
DELETE_TAG = "DELETE FROM run_tags WHERE tag = ? AND run_id = ?"
UPSERT_STEP = f"""INSERT INTO steps ({STEP_COLUMNS}) VALUES (?, ?, ?, ?)
    ON CONFLICT (run_id, name) DO UPDATE SET created = excluded.created, doc = excluded.doc"""
UPSERT_ARTIFACT = """INSERT INTO artifacts (run_id, name, stage, hash, size, time, step, category)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, name, stage) DO UPDATE SET
    hash = excluded.hash, size = excluded.size, time = excluded.time, step = excluded.step,
    category = excluded.category"""
IN_RANGE = "id BETWEEN ? AND ?"
APPEND = {  # the columns of the append-only tables, id first
    "events": ("id", "time", "message", "level"),
    "logs": ("id", "time", "text", "stream", "step"),
}
ROWS_PER_INSERT = 200  # multi-row INSERTs: half the cost per row of executemany in SQLite

@dataclass(frozen=True)
class Dialect:
    """How one database spells what the SQL backends need."""

    types: Mapping[str, str]  # the {tokens} of ``SCHEMA`` (key, real, int, serial, json, blob)
    find: str  # function giving the 1-based position of a substring, 0 when absent
    no_limit: str  # LIMIT that means "all rows"
    lock_share: str  # row lock: the run cannot be deleted while rows are added to it
    lock_edit: str  # row lock for a read-check-write of one row
    lock_delete: str  # row lock taken before a run is deleted
    unique_error: type[Exception]  # the driver's unique-violation error
    load_json: Callable[[Any], Any]  # a JSON column's value as the driver returns it -> Python
    allow_nan: bool  # whether JSON columns may hold NaN and infinities
    schema_lock: str | None = None  # statement that serialises schema creation
    # statements run once a table rebuilt as {temp} is renamed {table}: they give its keys the
    # names they have when created as {table} (PostgreSQL names constraints after their table)
    renamed: tuple[str, ...] = ()
    placeholder: str = "?"
    json_flavour: str = "sqlite"  # how a JSON value is read in SQL: sqlite or postgres
    data_error: tuple[type[Exception], ...] = ()  # a query failed on a stored value

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else _translate(text, self.placeholder)

    def schema(self) -> list[str]:
        return [statement.format(**self.types) for statement in SCHEMA]

    @cached_property
    def _encoder(self) -> json.JSONEncoder:
        return json.JSONEncoder(allow_nan=self.allow_nan, separators=(",", ":"))

    @cached_property
    def encode_json(self) -> Callable[[Any], str]:
        """The bare encoder (raises ``TypeError`` or ``ValueError`` for what is not JSON)."""
        return self._encoder.encode

    def dump_json(self, value: Any) -> str | None:
        if value is None:
            return None
        if not value and isinstance(value, dict):
            return "{}"
        try:
            return self._encoder.encode(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"cannot store {value!r:.60}: not plain JSON ({exc})") from None


class Tx:
    """An open transaction (or read) on one connection; statements use ``?`` placeholders."""

    __slots__ = ("cursor", "dialect")

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.cursor.execute(self.dialect.sql(sql), params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = self.cursor.execute(self.dialect.sql(sql), params).fetchall()
        return rows

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(self.dialect.sql(sql), params)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self.dialect.sql(sql), rows)

    def append(self, table: str, flat: list[Any]) -> None:
        """Insert rows of ``APPEND[table]`` given one after another in one flat list."""
        self._rows_at_once(lambda rows: _values_sql(table, rows), len(APPEND[table]), flat)

    def upsert_steps(self, run_id: str, docs: Sequence[tuple[str, float, str]]) -> None:
        """Upsert steps given as ``(name, created, doc JSON)`` (the last of a name wins) with
        multi-row statements: fewer calls into the database, and in SQLite the GIL is let go
        once per statement instead of once per row."""
        flat: list[Any] = []
        for name, (created, text) in {name: (c, t) for name, c, t in docs}.items():
            flat += (run_id, name, created, text)
        self._rows_at_once(_upsert_steps_sql, 4, flat)

    def _rows_at_once(self, sql_for: Callable[[int], str], width: int, flat: list[Any]) -> None:
        """Rows of ``width`` values, one after another in ``flat``, written with statements of
        ``ROWS_PER_INSERT`` rows (``sql_for(rows)``), then one for the rest."""
        chunk = ROWS_PER_INSERT * width
        whole = len(flat) // chunk * chunk
        if whole:
            self.many(sql_for(ROWS_PER_INSERT),
                      [flat[at : at + chunk] for at in range(0, whole, chunk)])
        if whole < len(flat):
            self.run(sql_for((len(flat) - whole) // width), flat[whole:])


@lru_cache(maxsize=256)
def _translate(text: str, placeholder: str) -> str:
    return text.replace("%", "%%").replace("?", placeholder)


@lru_cache(maxsize=64)
def _values_sql(table: str, rows: int) -> str:
    """``INSERT INTO table (...) VALUES (?, ...), ...`` for ``rows`` rows."""
    columns = APPEND[table]
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)


@lru_cache(maxsize=64)
def _upsert_steps_sql(rows: int) -> str:
    """``UPSERT_STEP`` for ``rows`` rows in one statement."""
    head, _, tail = UPSERT_STEP.partition("VALUES (?, ?, ?, ?)")
    return head + "VALUES " + ", ".join(["(?, ?, ?, ?)"] * rows) + tail


# -- runs <-> rows -----------------------------------------------------------------------------
def run_row(run: RunRecord, dialect: Dialect) -> Row:
    """The ``runs`` row of a run, in ``RUN_COLUMNS`` order."""
    owner = owner_to_dict(run.owner) if isinstance(run.owner, Owner) else run.owner
    documents = (sorted(run.tags), run.metadata, run.parameters, owner, run.code,
                 run.environment, run.config, run.resources, run.internals)
    return (
        run.id, run.name, run.folder, Kind(run.kind).value, Status(run.status).value,
        run.status_reason, run.description, run.created, run.started, run.ended,
        run.heartbeat, run.origin, *(dialect.dump_json(d) for d in documents),
    )


def run_changes(old: RunRecord, new: RunRecord, dialect: Dialect, row: Row | None = None
                ) -> tuple[str, list[Any]]:
    """The ``SET`` list and values that turn ``old``'s row into ``new``'s: only the columns
    whose value was replaced (``Run.replace`` keeps what it does not change), so a status
    change does not encode the run's whole metadata, environment and config again.

    ``row`` is ``old`` as read, when at hand: metadata or internals that only gained keys are
    then written as their stored text with the new keys appended (a workflow's closing summary
    beside its DAG and plan), instead of being encoded again as a whole.
    """
    sets: list[str] = []
    values: list[Any] = []
    for index, column in enumerate(RUN_COLUMNS[1:], 1):
        value, was = getattr(new, column), getattr(old, column)
        if value is was or value == was:
            continue
        sets.append(f"{column} = ?")
        if index < FIRST_JSON:
            plain = {"kind": Kind, "status": Status}.get(column)
            values.append(value if plain is None or value is None else plain(value).value)
        elif column in ("metadata", "internals"):
            values.append(_metadata_text(was, value, dialect,
                                         None if row is None else row[index]))
        elif column == "tags":
            values.append(dialect.dump_json(sorted(value)))
        elif column == "owner" and isinstance(value, Owner):
            values.append(dialect.dump_json(owner_to_dict(value)))
        else:
            values.append(dialect.dump_json(value))
    return ", ".join(sets), values


def _metadata_text(old: dict[str, Any], new: dict[str, Any], dialect: Dialect,
                   stored: Any) -> str | None:
    """``new`` as JSON; built on ``stored`` (the text of ``old``) when ``new`` only adds keys."""
    if not (isinstance(stored, str) and len(stored) > 2 and stored[0] == "{"
            and stored[-1] == "}" and len(new) > len(old)):
        return dialect.dump_json(new)
    added = {}
    for key, value in new.items():
        if key not in old:
            added[key] = value
        elif old[key] is not value:
            return dialect.dump_json(new)
    if len(old) + len(added) != len(new):  # a key of old is gone
        return dialect.dump_json(new)
    text = dialect.dump_json(added)
    assert text is not None and text[0] == "{"
    return stored[:-1] + "," + text[1:]


def row_run(row: Row, dialect: Dialect) -> RunRecord:
    data = dict(zip(RUN_COLUMNS[:FIRST_JSON], row[:FIRST_JSON], strict=True))
    for column, value in zip(RUN_COLUMNS[FIRST_JSON:], row[FIRST_JSON:], strict=True):
        data[column] = dialect.load_json(value)
    return run_from_dict(data)


def row_values(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Rows as flat rows for ``Tx.append``, ids still 0."""
    return list(chain.from_iterable([(0, *row) for row in rows]))


def id_range(seq: int) -> tuple[int, int]:
    """The first and last row id of the run numbered ``seq`` in the append-only tables."""
    if not 0 <= seq <= MAX_SEQ:
        raise StoreError(f"run number {seq} is out of range; this store holds at most {MAX_SEQ}")
    return seq * SPAN, seq * SPAN + SPAN - 1


# -- filters -----------------------------------------------------------------------------------
HAS_TAG = "EXISTS (SELECT 1 FROM run_tags x WHERE x.tag = ? AND x.run_id = r.id)"


@dataclass(frozen=True)
class Query:
    """FROM and WHERE of a run listing (the runs table is ``r``), and the column to order by."""

    source: str
    where: str
    params: tuple[Any, ...]
    order: str


def filter_query(wanted: RunFilter, dialect: Dialect) -> Query:
    tags = sorted(wanted.tags)
    conditions: list[str] = []
    params: list[Any] = []
    if tags:  # drive the query from the (tag, run_id) index: newest first is a range scan
        conditions.append("t.tag = ?")
        params.append(tags[0])
        for tag in tags[1:]:
            conditions.append(HAS_TAG)
            params.append(tag)
    _field_conditions(wanted, dialect, conditions, params)
    source = "run_tags t JOIN runs r ON r.id = t.run_id" if tags else "runs r"
    where = " AND ".join(conditions) or "1 = 1"
    return Query(source, where, tuple(params), "t.run_id" if tags else "r.id")


def _field_conditions(
    wanted: RunFilter, dialect: Dialect, conditions: list[str], params: list[Any]
) -> None:
    if wanted.status:
        statuses = sorted(Status(s).value for s in wanted.status)
        conditions.append(f"r.status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if wanted.folder is not None and wanted.folder != "/":
        # below the folder: from "<folder>/" up to "<folder>0" ('0' follows '/'), by code point
        conditions.append("(r.folder = ? OR (r.folder >= ? AND r.folder < ?))")
        params.extend((wanted.folder, wanted.folder + "/", wanted.folder + "0"))
    if wanted.name is not None:  # a plain substring test: no LIKE wildcards to escape
        conditions.append(f"{dialect.find}(r.name, ?) > 0")
        params.append(wanted.name)
    if wanted.kind is not None:
        conditions.append("r.kind = ?")
        params.append(Kind(wanted.kind).value)
    if wanted.created_since is not None:
        conditions.append("r.created >= ?")
        params.append(wanted.created_since)
    if wanted.created_until is not None:
        conditions.append("r.created < ?")
        params.append(wanted.created_until)


def storable_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``update_run`` fields in the types the columns hold (kind, owner)."""
    out = dict(fields)
    if "kind" in out:
        try:
            out["kind"] = Kind(out["kind"])
        except ValueError:
            kinds = ", ".join(k.value for k in Kind)
            raise ValidationError(f"unknown kind {out['kind']!r}; use one of: {kinds}") from None
    if isinstance(out.get("owner"), Mapping):
        out["owner"] = owner_from_dict(dict(out["owner"]))
    elif out.get("owner") is not None and not isinstance(out["owner"], Owner):
        raise ValidationError(f"owner must be an Owner, not {type(out['owner']).__name__}")
    return out
