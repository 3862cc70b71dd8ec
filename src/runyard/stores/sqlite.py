"""``sqlite:///path/runyard.db`` — the embedded default store.

One connection per store object, guarded by a lock (so a store is safe to share between
threads); several processes may use the same file at once. The database runs in WAL mode with
``synchronous=NORMAL``; every transaction that writes starts with ``BEGIN IMMEDIATE``, so two
writers queue on the busy timeout instead of failing with "database is locked".

Checkpoints (copying the write-ahead log back into the database, with an fsync) run on a
background thread with a connection of its own, at most every ``CHECKPOINT_EVERY_S`` while
this process writes: SQLite's own checkpoint runs inside the commit that fills the log, and
stalled one workflow run in about twenty by ~14 ms here. SQLite still checkpoints by itself
if the log reaches ``BACKSTOP_PAGES`` (say, while only short-lived processes write). A
``fork`` waits for a checkpoint in progress (see ``_fork_gate``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runyard.errors import StoreError, StoreReadOnly
from runyard.stores.sql import SqlStore
from runyard.stores.sqlschema import Dialect, Tx

BUSY_TIMEOUT_S = 30.0
CHECKPOINT_EVERY_S = 0.25
BACKSTOP_PAGES = 4000  # (SQLite's default is 1000 pages)

# Held by a checkpoint thread while it is inside SQLite, and by a thread about to ``fork``
# (``os.register_at_fork``): a child made while another thread held one of SQLite's own locks
# would find it held for ever (``run exec`` forks its supervisor right after writing a run).
_fork_gate = threading.Lock()


def _gate_after_fork_in_child() -> None:
    global _fork_gate
    _fork_gate = threading.Lock()


os.register_at_fork(before=lambda: _fork_gate.acquire(),
                    after_in_parent=lambda: _fork_gate.release(),
                    after_in_child=_gate_after_fork_in_child)


_scan = json.JSONDecoder().raw_decode


def _load_text(value: Any) -> Any:
    """A JSON column's text decoded. Straight through the decoder's C scanner (``raw_decode``):
    the text was written by the store, without surrounding spaces, and ``json.loads``'s own
    checks cost more than decoding a small document (0.84 against 1.6 us for a 60-byte one);
    anything else goes through ``json.loads``."""
    if value is None:
        return None
    try:
        found, end = _scan(value, 0)
    except (ValueError, TypeError):
        return json.loads(value)  # (which says what is wrong)
    return found if end == len(value) else json.loads(value)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL mode. While another process switches a new database at the same moment
    this fails at once with "database is locked" (the busy timeout does not cover it), so it
    is tried again until ``BUSY_TIMEOUT_S`` has passed."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _error(path: Path, exc: BaseException, what: str) -> StoreError:
    """The one-line error for a failure of SQLite on the store at ``path``."""
    text = str(exc)
    if "readonly" in text:
        return StoreReadOnly(path, text)
    if "not a database" in text:
        return StoreError(f"{path} is not an SQLite database ({text}); give the path of a "
                          "runyard store, like sqlite:///PATH/runyard.db")
    return StoreError(f"{what} {path}: {text}")


SQLITE = Dialect(
    types={"key": "TEXT", "real": "REAL", "int": "INTEGER", "serial": "INTEGER",
           "json": "TEXT", "blob": "BLOB", "without_rowid": " WITHOUT ROWID"},
    find="instr",
    no_limit="-1",
    lock_share="",  # BEGIN IMMEDIATE already holds the database's write lock
    lock_edit="",
    lock_delete="",
    unique_error=sqlite3.IntegrityError,
    load_json=_load_text,
    allow_nan=True,
    data_error=(sqlite3.OperationalError,),  # (json_each of NaN: "malformed JSON")
)


class SqliteStore(SqlStore):
    """A run store in one SQLite file; its parent folder is created when missing."""

    dialect = SQLITE

    def __init__(self, path: str | Path, url: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.url = url or f"sqlite://{self.path.resolve()}"
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []  # from a fork: never used nor closed
        self._checkpoint_due = 0.0  # (time.monotonic) when a write may start the next one
        self._checkpointing = False  # whether one is running
        self._checkpoints = 0  # started by this object in this process
        self._open_schema()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._read_only():
                return self._connect_read_only()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        except (OSError, sqlite3.Error) as exc:
            raise _error(self.path, exc, "cannot open the SQLite store") from exc
        return conn

    def _read_only(self) -> bool:
        """Whether this user can only read the store: its file (or the folder, where SQLite
        keeps the write-ahead log beside it) exists but is not writable."""
        if not self.path.exists():  # looked at first: once it exists, so does its folder
            return False  # (the other way round, a store made meanwhile looked read-only)
        return not (os.access(self.path.parent, os.W_OK) and os.access(self.path, os.W_OK))

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that only reads: ``mode=ro`` where the log's shared-memory file is
        there to read (or can be made), else ``immutable=1``, which reads the database file
        as it is (all that a user who may not write beside it can see)."""
        uri = self.path.resolve().as_uri()
        for query in ("mode=ro", "mode=ro&immutable=1"):
            conn = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
                return conn
            except sqlite3.Error:
                conn.close()
                if "immutable" in query:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (a connection inherited through ``fork`` is left alone)."""
        if self._pid != os.getpid():
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._conn, self._pid = None, os.getpid()
            self._checkpointing = False  # (the parent's thread is not here)
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Tx]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield Tx(conn, SQLITE)
                conn.execute("COMMIT")
                if write and time.monotonic() >= self._checkpoint_due:
                    self._start_checkpoint()
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _error(self.path, exc, "SQLite store") from exc
                raise

    def _start_checkpoint(self) -> None:
        """Checkpoint the log on a background thread (unless one is running here)."""
        self._checkpoint_due = time.monotonic() + CHECKPOINT_EVERY_S
        if not self._checkpointing:
            self._checkpointing = True
            self._checkpoints += 1
            threading.Thread(target=self._checkpoint, name="runyard-sqlite-checkpoint",
                             daemon=True).start()

    def _checkpoint(self) -> None:
        """A passive checkpoint: it copies what no reader still needs, and waits for no one
        (a failure is left to the next one, or to SQLite's own). Inside the fork gate: a
        ``fork`` waits for it, so no child starts with SQLite's locks held by this thread."""
        try:
            with _fork_gate, contextlib.suppress(sqlite3.Error), contextlib.closing(
                    sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S,
                                    isolation_level=None)) as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._checkpointing = False

    def connected(self) -> bool:
        """Whether this process has the store's connection open."""
        return self._conn is not None and self._pid == os.getpid()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

