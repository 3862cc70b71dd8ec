"""``ORDER BY`` for the run orders other than ``created`` (``stores.ordering``), in SQL.

Each order is a list of terms giving exactly ``ordering.sorted_runs``'s order: whether the run
has no value (ascending in both directions: those come last), then the value, then the id, in
the asked direction. Name, status and kind always have a value, so their order is their
index's (``runs.name``, ``runs_status``); name is compared by code point (``COLLATE "C"`` in
PostgreSQL), status and kind are lowercase ASCII, which every collation orders alike.

A parameter is read per row. SQLite (``json_each``): whether it is other JSON (bool, null,
list, object, NaN), then one key: the number or string itself (SQLite orders numbers, exactly,
before text, and text by code point), or the other value's JSON text. PostgreSQL (``->``,
``json_typeof``): its group (number, string, other), its number (``NUMERIC``, exact), its
string and its JSON text, both ``COLLATE "C"``.

A page is found by sorting ids and keys only (a bounded top-N sort); whole rows are read for
the page's runs alone. Measured on 100,000 runs in SQLite, 50 a page, on a busy two-core
machine: created (the id index, untouched by this module) 0.6 ms, name and status 0.6 ms (their
index), started 22-30 ms, duration 16-40 ms, param:KEY 90-200 ms (a ``ROW_NUMBER`` over every
run instead of the top-N sort took 200-460 ms; sorting 100,000 records in Python 440-590 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runyard.stores.ordering import param_of
from runyard.stores.sqlschema import RUN_FIELDS, Dialect, Query, Row, Tx

ROWS_PER_READ = 500  # ids in one ``IN (...)`` (SQLite allows 32,766 parameters)


@dataclass(frozen=True)
class ParamSql:
    """How one database reads a run's parameter ``p``, joined per run (``join`` takes the key)."""

    join: str
    missing: str
    values: tuple[str, ...]  # the terms that order the values, each in the asked direction


SQLITE_PARAM = ParamSql(
    join="LEFT JOIN json_each(r.parameters) p ON p.key = ?",
    missing="p.type IS NULL",
    values=(
        "(p.atom IS NULL OR p.type IN ('true', 'false'))",
        "CASE WHEN p.atom IS NOT NULL AND p.type IN ('integer', 'real', 'text') THEN p.atom "
        "WHEN p.type IN ('array', 'object') THEN p.value "
        "WHEN p.type IN ('integer', 'real') THEN 'NaN' ELSE p.type END",  # (a real with no
    ),  # value is NaN, where SQLite reads JSON holding it)
)
POSTGRES_PARAM = ParamSql(
    join="LEFT JOIN LATERAL (SELECT r.parameters -> CAST(? AS TEXT) AS v) p ON TRUE",
    missing="p.v IS NULL",
    values=(
        "CASE json_typeof(p.v) WHEN 'number' THEN 0 WHEN 'string' THEN 1 ELSE 2 END",
        "CASE WHEN json_typeof(p.v) = 'number' THEN CAST(p.v #>> '{}' AS NUMERIC) END",
        "(CASE WHEN json_typeof(p.v) = 'string' THEN p.v #>> '{}' END) COLLATE \"C\"",
        "(CASE WHEN json_typeof(p.v) NOT IN ('number', 'string') THEN CAST(p.v AS TEXT) END)"
        ' COLLATE "C"',
    ),
)
PARAM_SQL = {"sqlite": SQLITE_PARAM, "postgres": POSTGRES_PARAM}
ALWAYS_SET = {"name": "r.name", "status": "r.status", "kind": "r.kind"}
MAYBE_SET = {"started": "r.started", "ended": "r.ended", "duration": "(r.ended - r.started)"}


@dataclass(frozen=True)
class Ordering:
    join: str  # more FROM (a parameter's join), taking ``params`` before the WHERE's
    params: tuple[str, ...]
    terms: str  # the ORDER BY list


def ordering(order_by: str, newest_first: bool, dialect: Dialect) -> Ordering:
    """The terms of a checked order other than ``created``."""
    way = "DESC" if newest_first else "ASC"
    if order_by in ALWAYS_SET:
        return Ordering("", (), f"{ALWAYS_SET[order_by]} {way}, r.id {way}")
    name = param_of(order_by)
    if name is None:
        column = MAYBE_SET[order_by]
        return Ordering("", (), f"({column} IS NULL) ASC, {column} {way}, r.id {way}")
    sql = PARAM_SQL[dialect.json_flavour]
    terms = [f"({sql.missing}) ASC", *(f"{value} {way}" for value in sql.values), f"r.id {way}"]
    return Ordering(sql.join, (name,), ", ".join(terms))


def ordered_ids(q: Query, order: Ordering, dialect: Dialect, limit: int | None,
                offset: int) -> tuple[str, tuple[object, ...]]:
    """The statement giving a page of the filtered runs' ids in ``order``, and its values."""
    cut = dialect.no_limit if limit is None else "?"
    sql = (f"SELECT r.id FROM {q.source} {order.join} WHERE {q.where} "
           f"ORDER BY {order.terms} LIMIT {cut} OFFSET ?")
    return sql, (*order.params, *q.params, *(() if limit is None else (limit,)), offset)


def rows_of(tx: Tx, ids: Sequence[str]) -> list[Row]:
    """The rows of the runs ``ids``, in that order (a run deleted meanwhile is left out)."""
    found: dict[str, Row] = {}
    for at in range(0, len(ids), ROWS_PER_READ):
        chunk = ids[at:at + ROWS_PER_READ]
        marks = ", ".join("?" * len(chunk))
        for row in tx.all(f"SELECT {RUN_FIELDS} FROM runs r WHERE r.id IN ({marks})", chunk):
            found[row[0]] = row
    return [found[i] for i in ids if i in found]


def full_select(q: Query) -> tuple[str, tuple[object, ...]]:
    """Every filtered run's row (a page ordered in Python, when a stored value stops the SQL
    order: ``Dialect.data_error``)."""
    return f"SELECT {RUN_FIELDS} FROM {q.source} WHERE {q.where}", q.params
