"""The command registry: codespec versions, buffers and their chunks, in one SQLite file.

It lives beside the blob store (``<blob root>/../commands.db``), whatever the run store is, so
every process that opens the same store finds the same codespecs and buffers. Codespecs and
buffers are not runs: keeping them out of the run store keeps ``run list`` about runs, and SQLite
gives the atomic steps they need (the next version number, claiming a buffer for one writer)
from any number of processes. A buffer's bytes are blobs in the blob store, one per chunk; a
chunk row with no digest ends one part (a replica's share) of the buffer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.commands.codespec import Codespec, codespec_name, from_mapping
from runyard.errors import BufferNotFound, CodespecNotFound, ConflictError, ValidationError
from runyard.model import Owner, new_id

SCHEMA = """
CREATE TABLE IF NOT EXISTS codespecs (
  name TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL, digest TEXT NOT NULL,
  spec TEXT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS buffers (
  id TEXT PRIMARY KEY, created REAL NOT NULL, tags TEXT NOT NULL, state TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0, parts INTEGER NOT NULL DEFAULT 1, run_id TEXT,
  owner TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS chunks (
  buffer_id TEXT NOT NULL, part INTEGER NOT NULL, seq INTEGER NOT NULL, digest TEXT,
  size INTEGER NOT NULL, PRIMARY KEY (buffer_id, part, seq));
"""

CREATED, WRITING, COMPLETE, INCOMPLETE = "created", "writing", "complete", "incomplete"
FINAL_STATES = frozenset({COMPLETE, INCOMPLETE})


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    created: float
    spec: Codespec

    @property
    def ref(self) -> str:
        return f"{self.name}/versions/{self.version}"


@dataclass(frozen=True)
class Buffer:
    id: str
    created: float
    tags: dict[str, str] = field(default_factory=dict)
    state: str = CREATED
    size: int = 0
    parts: int = 1
    run_id: str | None = None
    owner: Owner | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "tags": self.tags, "state": self.state,
                "size": self.size, "parts": self.parts, "run_id": self.run_id,
                "reason": self.reason}


@dataclass(frozen=True)
class Chunk:
    part: int
    seq: int
    digest: str | None  # None: the end of the part
    size: int


class Registry:
    """Codespecs and buffers in ``<root>/commands.db``; one connection per thread."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / "commands.db"
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- codespecs ---------------------------------------------------------------------------
    def add_codespec(self, spec: Codespec) -> tuple[Version, bool]:
        """Register ``spec``: a new version unless the latest has the same content."""
        digest, now = spec.digest(), time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT version, digest FROM codespecs WHERE name = ? ORDER BY version DESC "
                "LIMIT 1", (spec.name,)).fetchone()
            if row is not None and row[1] == digest:
                return self.codespec(f"{spec.name}/versions/{row[0]}", conn), False
            version = 1 if row is None else row[0] + 1
            conn.execute("INSERT INTO codespecs VALUES (?, ?, ?, ?, ?)",
                         (spec.name, version, now, digest, json.dumps(spec.to_dict())))
        return Version(spec.name, version, now, spec), True

    def codespec(self, ref: str, conn: sqlite3.Connection | None = None) -> Version:
        """The codespec ``name`` (its latest version) or ``name/versions/N``."""
        name, version = split_ref(ref)
        conn = conn or self._conn()
        if version is None:
            row = conn.execute("SELECT name, version, created, spec FROM codespecs WHERE name = ? "
                               "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        else:
            row = conn.execute("SELECT name, version, created, spec FROM codespecs "
                               "WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            raise CodespecNotFound(ref, self._hint(conn, name, version))
        return Version(row[0], row[1], row[2], from_mapping(json.loads(row[3])))

    def _hint(self, conn: sqlite3.Connection, name: str, version: int | None) -> str:
        latest = conn.execute("SELECT MAX(version) FROM codespecs WHERE name = ?",
                              (name,)).fetchone()[0]
        if version is None or latest is None:
            return "see `runyard codespec list`"
        return f"{name} has versions 1 to {latest}"

    def codespecs(self, name: str | None = None) -> list[Version]:
        """The latest version of every codespec, or every version of ``name``."""
        if name is None:
            sql = ("SELECT name, version, created, spec FROM codespecs c WHERE version = "
                   "(SELECT MAX(version) FROM codespecs WHERE name = c.name) ORDER BY name")
            rows = self._conn().execute(sql).fetchall()
        else:
            rows = self._conn().execute("SELECT name, version, created, spec FROM codespecs "
                                        "WHERE name = ? ORDER BY version", (name,)).fetchall()
        return [Version(r[0], r[1], r[2], from_mapping(json.loads(r[3]))) for r in rows]

    # -- buffers -----------------------------------------------------------------------------
    def create_buffer(self, tags: dict[str, str] | None = None) -> Buffer:
        buffer = Buffer(id=new_id(), created=time.time(), tags=dict(tags or {}))
        with self._write() as conn:
            conn.execute("INSERT INTO buffers (id, created, tags, state) VALUES (?, ?, ?, ?)",
                         (buffer.id, buffer.created, json.dumps(buffer.tags), CREATED))
        return buffer

    def buffer(self, buffer_id: str) -> Buffer:
        row = self._conn().execute(f"SELECT {_BUFFER_COLUMNS} FROM buffers WHERE id = ?",
                                   (buffer_id,)).fetchone()
        if row is None:
            raise BufferNotFound(buffer_id)
        return _buffer(row)

    def buffers(self, tags: dict[str, str] | None = None, limit: int | None = None) -> list[Buffer]:
        rows = self._conn().execute(
            f"SELECT {_BUFFER_COLUMNS} FROM buffers ORDER BY id DESC").fetchall()
        found = [b for b in map(_buffer, rows) if (tags or {}).items() <= b.tags.items()]
        return found if limit is None else found[:limit]

    def claim(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
              parts: int = 1) -> Buffer:
        """Make ``owner`` (or run ``run_id``) the one writer of a fresh buffer."""
        with self._write() as conn:
            current = self.buffer(buffer_id)
            if current.state != CREATED:
                raise ConflictError(f"buffer {buffer_id} already has data ({current.state}); "
                                    "buffers are written once: create a new one")
            conn.execute("UPDATE buffers SET state = ?, owner = ?, run_id = ?, parts = ? "
                         "WHERE id = ?", (WRITING, _owner_json(owner), run_id, parts, buffer_id))
        return self.buffer(buffer_id)

    def set_owner(self, buffer_id: str, owner: Owner) -> None:
        with self._write() as conn:
            conn.execute("UPDATE buffers SET owner = ? WHERE id = ? AND state = ?",
                         (_owner_json(owner), buffer_id, WRITING))

    def add_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                         (buffer_id, chunk.part, chunk.seq, chunk.digest, chunk.size))
            conn.execute("UPDATE buffers SET size = size + ? WHERE id = ?",
                         (chunk.size, buffer_id))

    def chunks_after(self, buffer_id: str, part: int, seq: int) -> list[Chunk]:
        rows = self._conn().execute(
            "SELECT part, seq, digest, size FROM chunks WHERE buffer_id = ? AND "
            "(part > ? OR (part = ? AND seq >= ?)) ORDER BY part, seq",
            (buffer_id, part, part, seq)).fetchall()
        return [Chunk(*row) for row in rows]

    def finish(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        """End the writing of a buffer; False if it had ended already."""
        state = COMPLETE if complete else INCOMPLETE
        with self._write() as conn:
            done = conn.execute("UPDATE buffers SET state = ?, reason = ? WHERE id = ? "
                                "AND state = ?", (state, reason, buffer_id, WRITING)).rowcount
        return bool(done)


_BUFFER_COLUMNS = "id, created, tags, state, size, parts, run_id, owner, reason"


def _buffer(row: tuple[Any, ...]) -> Buffer:
    owner = None if row[7] is None else Owner(**json.loads(row[7]))
    return Buffer(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6], owner,
                  row[8])


def _owner_json(owner: Owner | None) -> str | None:
    if owner is None:
        return None
    return json.dumps({"host": owner.host, "pid": owner.pid, "started": owner.started})


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name/versions/N`` as (name, N or None)."""
    name, sep, rest = ref.partition("/versions/")
    if not sep:
        if "/" in ref:
            raise ValidationError(f"invalid codespec reference {ref!r}: use NAME or "
                                  "NAME/versions/N")
        return codespec_name(ref), None
    if not (rest.isascii() and rest.isdigit()) or len(rest) > 9 or int(rest) < 1:  # ² is a digit
        raise ValidationError(f"invalid codespec version {rest!r} in {ref!r}: use a number "
                              "from 1, like hello/versions/2")
    return codespec_name(name), int(rest)


def parse_tags(pairs: Any) -> dict[str, str]:
    """``k=v`` strings (or a mapping from a spec file) as a dict of tags."""
    if isinstance(pairs, dict):
        items = [(str(k), "" if v is None else str(v)) for k, v in pairs.items()]
    else:
        items = []
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            if not sep:
                raise ValidationError(f"invalid tag {pair!r}: write it as key=value")
            items.append((key, value))
    for key, value in items:
        if not key.strip() or "\n" in key + value or len(key) + len(value) > 255:
            raise ValidationError(f"invalid tag {key!r}: a one-line key of at most 255 "
                                  "characters with its value")
    return dict(items)
