"""The registry (codespecs, buffers, chunks) of the SQL stores, for SQLite and PostgreSQL.

Tables (created with the others, see ``sqlschema.SCHEMA``):

* ``registry_versions (kind, name, latest)`` — the latest version number of each versioned
  name, by kind (``codespec`` today; workspace versions will be a second kind). Its row is
  the lock that numbers the next version: inserted if missing, then locked (PostgreSQL
  ``FOR NO KEY UPDATE``; SQLite's ``BEGIN IMMEDIATE`` holds the whole database), so two
  writers never take one number, also when the name is new to both.
* ``codespecs (name, version, created, digest, spec)`` — one row per version;
* ``buffers`` — one row per buffer; a claim is one ``UPDATE ... WHERE state = 'created'``;
* ``buffer_chunks (buffer_id, part, seq, digest, size)`` — its chunks, in key order.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from runyard.errors import BufferNotFound, ConflictError
from runyard.model import Owner
from runyard.model.codec import owner_from_dict, owner_to_dict
from runyard.model.registry import (
    COMPLETE,
    CREATED,
    INCOMPLETE,
    WRITING,
    Buffer,
    Chunk,
    CodespecRecord,
    tags_match,
)
from runyard.stores.registrybase import (
    buffer_taken,
    check_buffer_id,
    check_chunk,
    check_codespec_name,
    not_claimable,
    numbered,
)
from runyard.stores.sqlschema import Dialect, Row, Tx

CODESPEC = "codespec"  # the kind of a codespec's row in registry_versions
SELECT_CODESPEC = "SELECT name, version, created, digest, spec FROM codespecs"
SELECT_BUFFER = ("SELECT id, created, tags, state, size, parts, run_id, owner, reason "
                 "FROM buffers")


class SqlRegistry:
    """Mixed into ``SqlStore``, which gives the dialect and transactions."""

    dialect: Dialect

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]: ...

    # -- codespecs --------------------------------------------------------------------------
    def add_codespec(self, name: str, digest: str, spec: Mapping[str, Any], created: float,
                     number: int | None = None) -> tuple[CodespecRecord, bool]:
        check_codespec_name(name)
        text = self.dialect.dump_json(dict(spec))
        with self._transaction(True) as tx:
            latest = next_version_lock(tx, CODESPEC, name)
            if not numbered(name, number, latest):
                row = tx.one(f"{SELECT_CODESPEC} WHERE name = ? AND version = ?", (name, number))
                assert row is not None
                return self._reg_codespec(row), False
            if latest and number is None:
                row = tx.one(f"{SELECT_CODESPEC} WHERE name = ? AND version = ?", (name, latest))
                if row is not None and row[3] == digest:
                    return self._reg_codespec(row), False
            tx.run("INSERT INTO codespecs (name, version, created, digest, spec) "
                   "VALUES (?, ?, ?, ?, ?)", (name, latest + 1, created, digest, text))
            tx.run("UPDATE registry_versions SET latest = ? WHERE kind = ? AND name = ?",
                   (latest + 1, CODESPEC, name))
        return CodespecRecord(name, latest + 1, created, digest, dict(spec)), True

    def get_codespec(self, name: str, version: int | None = None) -> CodespecRecord | None:
        with self._transaction(False) as tx:
            if version is None:
                row = tx.one(f"{SELECT_CODESPEC} WHERE name = ? ORDER BY version DESC LIMIT 1",
                             (name,))
            else:
                row = tx.one(f"{SELECT_CODESPEC} WHERE name = ? AND version = ?",
                             (name, version))
        return None if row is None else self._reg_codespec(row)

    def list_codespecs(self, name: str | None = None) -> list[CodespecRecord]:
        with self._transaction(False) as tx:
            if name is None:
                rows = tx.all(f"{SELECT_CODESPEC} c WHERE version = (SELECT MAX(version) FROM "
                              "codespecs WHERE name = c.name) ORDER BY name")
            else:
                rows = tx.all(f"{SELECT_CODESPEC} WHERE name = ? ORDER BY version", (name,))
        return [self._reg_codespec(row) for row in rows]

    def _reg_codespec(self, row: Row) -> CodespecRecord:
        return CodespecRecord(row[0], int(row[1]), float(row[2]), row[3],
                              dict(self.dialect.load_json(row[4])))

    # -- buffers ----------------------------------------------------------------------------
    def create_buffer(self, buffer: Buffer) -> Buffer:
        check_buffer_id(buffer.id)
        owner = None if buffer.owner is None else owner_to_dict(buffer.owner)
        with self._transaction(True) as tx:
            if tx.one("SELECT 1 FROM buffers WHERE id = ?", (buffer.id,)) is not None:
                raise buffer_taken(buffer.id)
            tx.run("INSERT INTO buffers (id, created, tags, state, size, parts, run_id, owner, "
                   "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (buffer.id, buffer.created, self.dialect.dump_json(buffer.tags) or "{}",
                    buffer.state, buffer.size, buffer.parts, buffer.run_id,
                    self.dialect.dump_json(owner), buffer.reason))
        return buffer

    def get_buffer(self, buffer_id: str) -> Buffer:
        with self._transaction(False) as tx:
            return self._reg_buffer_in(tx, buffer_id)

    def _reg_buffer_in(self, tx: Tx, buffer_id: str) -> Buffer:
        row = tx.one(f"{SELECT_BUFFER} WHERE id = ?", (buffer_id,))
        if row is None:
            raise BufferNotFound(buffer_id)
        return self._reg_buffer(row)

    def _reg_buffer(self, row: Row) -> Buffer:
        owner = self.dialect.load_json(row[7])
        return Buffer(row[0], float(row[1]), dict(self.dialect.load_json(row[2])), row[3],
                      int(row[4]), int(row[5]), row[6],
                      None if owner is None else owner_from_dict(owner), row[8])

    def list_buffers(self, tags: Mapping[str, str] | None = None,
                     limit: int | None = None) -> list[Buffer]:
        with self._transaction(False) as tx:
            rows = tx.all(f"{SELECT_BUFFER} ORDER BY id DESC")
        found = [b for b in map(self._reg_buffer, rows) if tags_match(b, dict(tags or {}))]
        return found if limit is None else found[:limit]

    def claim_buffer(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
                     parts: int = 1) -> Buffer:
        data = None if owner is None else owner_to_dict(owner)
        with self._transaction(True) as tx:
            changed = _changed(tx, "UPDATE buffers SET state = ?, owner = ?, run_id = ?, "
                               "parts = ? WHERE id = ? AND state = ?",
                               (WRITING, self.dialect.dump_json(data), run_id, parts,
                                buffer_id, CREATED))
            current = self._reg_buffer_in(tx, buffer_id)
        if not changed:
            raise not_claimable(current)
        return current

    def set_buffer_owner(self, buffer_id: str, owner: Owner) -> None:
        with self._transaction(True) as tx:
            tx.run("UPDATE buffers SET owner = ? WHERE id = ? AND state = ?",
                   (self.dialect.dump_json(owner_to_dict(owner)), buffer_id, WRITING))

    def add_buffer_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        check_chunk(chunk)
        with self._transaction(True) as tx:
            if tx.all("SELECT 1 FROM buffer_chunks WHERE buffer_id = ? AND part = ? AND seq = ?",
                      (buffer_id, chunk.part, chunk.seq)):  # (a unique key: not a 503)
                raise ConflictError(f"buffer {buffer_id} has chunk {chunk.seq} of part "
                                    f"{chunk.part} already; chunks are recorded once")
            if not _changed(tx, "UPDATE buffers SET size = size + ? WHERE id = ?",
                            (chunk.size, buffer_id)):
                raise BufferNotFound(buffer_id)
            tx.run("INSERT INTO buffer_chunks (buffer_id, part, seq, digest, size) "
                   "VALUES (?, ?, ?, ?, ?)",
                   (buffer_id, chunk.part, chunk.seq, chunk.digest, chunk.size))

    def buffer_chunks(self, buffer_id: str, part: int = 0, seq: int = 0) -> list[Chunk]:
        with self._transaction(False) as tx:
            rows = tx.all("SELECT part, seq, digest, size FROM buffer_chunks WHERE buffer_id = ? "
                          "AND (part > ? OR (part = ? AND seq >= ?)) ORDER BY part, seq",
                          (buffer_id, part, part, seq))
            if not rows:
                self._reg_buffer_in(tx, buffer_id)
        return [Chunk(int(r[0]), int(r[1]), r[2], int(r[3])) for r in rows]

    def finish_buffer(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        state = COMPLETE if complete else INCOMPLETE
        with self._transaction(True) as tx:
            done = _changed(tx, "UPDATE buffers SET state = ?, reason = ? WHERE id = ? AND "
                            "state = ?", (state, reason, buffer_id, WRITING))
            if not done:
                self._reg_buffer_in(tx, buffer_id)
        return done


def next_version_lock(tx: Tx, kind: str, name: str) -> int:
    """Lock the version counter of ``kind``/``name`` (made at 0 if new); its latest number."""
    tx.run("INSERT INTO registry_versions (kind, name, latest) VALUES (?, ?, 0) "
           "ON CONFLICT (kind, name) DO NOTHING", (kind, name))
    row = tx.one("SELECT latest FROM registry_versions WHERE kind = ? AND name = ?"
                 + tx.dialect.lock_edit, (kind, name))
    assert row is not None
    return int(row[0])


def _changed(tx: Tx, sql: str, params: tuple[Any, ...]) -> bool:
    """Run an UPDATE; whether it changed a row."""
    done = tx.cursor.execute(tx.dialect.sql(sql), params)  # (a cursor, from either driver)
    return bool(done.rowcount)
