"""Creating the SQL stores' tables, and upgrading a store made by an older runyard.

Opening a store reads its schema version (``schema_current``); only when that is not this
runyard's does it take a write lock to create the tables or upgrade them (``ensure_schema``),
in one transaction with the version row.
"""

from __future__ import annotations

from runyard.errors import StoreError
from runyard.model.codec import lift_internals
from runyard.stores import sqlmetrics
from runyard.stores.sqlschema import SCHEMA_VERSION, STEP_COLUMNS, STEPS_TABLE, Tx, id_range


def schema_current(tx: Tx) -> bool:
    """Whether the tables are there at this runyard's schema version: a plain read, so an
    up-to-date store is opened without taking a write lock (the tables and the version row
    are written in one transaction, so the version says the tables are complete)."""
    row = tx.one("SELECT MAX(version) FROM runyard_schema")
    return row is not None and row[0] == SCHEMA_VERSION


def ensure_schema(tx: Tx) -> None:
    """Create the tables (idempotent) and check the schema version; call inside a write."""
    if tx.dialect.schema_lock:
        tx.run(tx.dialect.schema_lock)
    for statement in tx.dialect.schema():
        tx.run(statement)
    row = tx.one("SELECT MAX(version) FROM runyard_schema")
    if row is None or row[0] is None:
        tx.run("INSERT INTO runyard_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise StoreError(
            f"this store has schema version {row[0]}, newer than this runyard understands "
            f"({SCHEMA_VERSION}); upgrade runyard"
        )
    elif row[0] < SCHEMA_VERSION:
        _migrate(tx, int(row[0]))


def _migrate(tx: Tx, version: int) -> None:
    """Bring a store made by an older runyard up to ``SCHEMA_VERSION``, in the caller's write."""
    if version not in (1, 2, 3, 4, 5):
        raise StoreError(f"this store has schema version {version}, which this runyard cannot "
                         "upgrade; copy its runs with an older runyard first")
    if version == 1:
        seqs = [int(r[0]) for r in tx.all("SELECT seq FROM runs ORDER BY seq")]
        sqlmetrics.migrate_rows(tx, (id_range(seq) for seq in seqs))
    if version < 3:
        _rebuild_steps(tx)
    if version < 4:
        _add_internals(tx)
    # 5: the registry tables, 6: batch keys and tokens, which ``ensure_schema`` has just made
    tx.run("UPDATE runyard_schema SET version = ?", (SCHEMA_VERSION,))


def _add_internals(tx: Tx) -> None:
    """Give runs their ``internals`` column (version 4), and move what workflow runs kept in
    their metadata and config (DAG, plan, results, counts) into it."""
    if not _has_column(tx, "runs", "internals"):  # (a store upgraded half-way has it)
        tx.run("ALTER TABLE runs ADD COLUMN internals {json} NOT NULL DEFAULT '{{}}'".format(
            **tx.dialect.types))
    dialect = tx.dialect
    rows = tx.all("SELECT id, metadata, config FROM runs WHERE kind = 'workflow'")
    for run_id, metadata, config in rows:
        moved = lift_internals(dialect.load_json(metadata) or {}, dialect.load_json(config) or {})
        tx.run("UPDATE runs SET metadata = ?, config = ?, internals = ? WHERE id = ?",
               (*(dialect.dump_json(d) for d in moved), run_id))


def _has_column(tx: Tx, table: str, column: str) -> bool:
    found = tx.cursor.execute(f"SELECT * FROM {table} LIMIT 0")  # a cursor in both drivers
    return column in {str(field[0]) for field in found.description}


def _rebuild_steps(tx: Tx, temp: str = "steps_v3") -> None:
    """Move the steps into a table of today's layout, whatever the old one's (version 3).

    The new table is made under another name and renamed once the old one is gone, so no
    constraint or index name of the two clashes meanwhile (PostgreSQL's ``steps_pkey``)."""
    tx.run(STEPS_TABLE.format(table=temp, **tx.dialect.types))
    tx.run(f"INSERT INTO {temp} ({STEP_COLUMNS}) SELECT {STEP_COLUMNS} FROM steps "
           "ORDER BY run_id, name")
    tx.run("DROP TABLE steps")
    tx.run(f"ALTER TABLE {temp} RENAME TO steps")
    for statement in tx.dialect.renamed:
        tx.run(statement.format(temp=temp, table="steps"))
