"""The registry (codespecs, buffers, chunks) of the ``file:`` and ``chunked:`` stores.

Under ``<dir>/.registry/`` (a name no run id can take):

* ``codespecs/<name>.jsonl`` — the versions of one codespec, one per line, appended under
  ``codespecs/<name>.lock``: the next version is the number of lines plus one, read and
  appended under that lock, so two processes never take the same number. (Workspace versions
  can be kept the same way, in a folder of their own.)
* ``buffers/<id>.json`` — the buffer record, replaced atomically under ``buffers/<id>.lock``
  (so only one writer claims a fresh buffer);
* ``buffers/<id>.chunks.jsonl`` — its chunks (``[part, seq, digest, size]``), appended under
  the same lock; a buffer's size is the sum of its chunks'.

Reads take no lock: the records are replaced atomically and the chunk files only grow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from runyard.errors import BufferNotFound, StoreError, ValidationError
from runyard.model import Owner
from runyard.model.registry import (
    COMPLETE,
    CREATED,
    INCOMPLETE,
    WRITING,
    Buffer,
    Chunk,
    CodespecRecord,
    buffer_from_doc,
    buffer_to_doc,
    tags_match,
)
from runyard.stores.fileindex import LOCK_POLL
from runyard.stores.files import (
    append_records,
    atomic_write_json,
    dumps,
    read_json,
    read_json_lines,
)
from runyard.stores.registrybase import (
    buffer_taken,
    check_buffer_id,
    check_chunk,
    check_codespec_name,
    known_buffer_id,
    not_claimable,
    numbered,
)

REGISTRY = ".registry"


class FileRegistry:
    """Mixed into the file stores, which give ``root``: their folder."""

    root: Path

    def _reg_folder(self, kind: str) -> Path:
        folder = self.root / REGISTRY / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {folder}: {exc.strerror}") from exc
        return folder

    @contextlib.contextmanager
    def _reg_hold(self, kind: str, key: str) -> Iterator[Path]:
        """Hold the lock of one codespec or buffer; a StoreError if it cannot be taken (a
        store this user may only read)."""
        folder = self._reg_folder(kind)
        lock = FileLock(folder / f"{key}.lock", poll_interval=LOCK_POLL)
        try:
            lock.acquire()
        except OSError as exc:
            raise StoreError(f"cannot lock {lock.lock_file}: {exc.strerror or exc} (is the "
                             "store read-only for you?)") from exc
        try:
            yield folder
        finally:
            lock.release()

    # -- codespecs --------------------------------------------------------------------------
    def add_codespec(self, name: str, digest: str, spec: Mapping[str, Any], created: float,
                     number: int | None = None) -> tuple[CodespecRecord, bool]:
        check_codespec_name(name)
        with self._reg_hold("codespecs", name) as folder:
            path = folder / f"{name}.jsonl"
            versions = read_json_lines(path)
            if not numbered(name, number, len(versions)):
                return _codespec(name, versions[number - 1]), False  # type: ignore[operator]
            if number is None and versions and versions[-1]["digest"] == digest:
                return _codespec(name, versions[-1]), False
            row = {"version": len(versions) + 1, "created": created, "digest": digest,
                   "spec": dict(spec)}
            append_records(path, dumps(row) + b"\n")
        return _codespec(name, row), True

    def _reg_versions(self, name: str) -> list[CodespecRecord]:
        try:
            check_codespec_name(name)
        except ValidationError:
            return []  # no codespec has that name
        path = self.root / REGISTRY / "codespecs" / f"{name}.jsonl"
        return [_codespec(name, row) for row in read_json_lines(path)]

    def get_codespec(self, name: str, version: int | None = None) -> CodespecRecord | None:
        versions = self._reg_versions(name)
        if version is None:
            return versions[-1] if versions else None
        return versions[version - 1] if 0 < version <= len(versions) else None

    def list_codespecs(self, name: str | None = None) -> list[CodespecRecord]:
        if name is not None:
            return self._reg_versions(name)
        folder = self.root / REGISTRY / "codespecs"
        names = sorted(p.name[:-len(".jsonl")] for p in folder.glob("*.jsonl"))
        latest = (self.get_codespec(n) for n in names)
        return [record for record in latest if record is not None]

    # -- buffers ----------------------------------------------------------------------------
    def _reg_record(self, buffer_id: str) -> Path:
        return self.root / REGISTRY / "buffers" / f"{known_buffer_id(buffer_id)}.json"

    def _reg_chunks(self, buffer_id: str) -> Path:
        return self.root / REGISTRY / "buffers" / f"{buffer_id}.chunks.jsonl"

    def create_buffer(self, buffer: Buffer) -> Buffer:
        path = self._reg_record(check_buffer_id(buffer.id))
        with self._reg_hold("buffers", buffer.id):
            if path.exists():
                raise buffer_taken(buffer.id)
            atomic_write_json(path, buffer_to_doc(buffer))
        return buffer

    def _reg_stored(self, buffer_id: str) -> Buffer:
        """The record as written (its size not counted in)."""
        try:
            return buffer_from_doc(read_json(self._reg_record(buffer_id)))
        except FileNotFoundError:
            raise BufferNotFound(buffer_id) from None

    def get_buffer(self, buffer_id: str) -> Buffer:
        stored = self._reg_stored(buffer_id)
        size = sum(row[3] for row in read_json_lines(self._reg_chunks(buffer_id)))
        return replace(stored, size=size)

    def list_buffers(self, tags: Mapping[str, str] | None = None,
                     limit: int | None = None) -> list[Buffer]:
        folder = self.root / REGISTRY / "buffers"
        ids = sorted((p.name[:-len(".json")] for p in folder.glob("*.json")), reverse=True)
        found: list[Buffer] = []
        for buffer_id in ids:
            with contextlib.suppress(BufferNotFound):
                buffer = self.get_buffer(buffer_id)
                if tags_match(buffer, dict(tags or {})):
                    found.append(buffer)
            if limit is not None and len(found) >= limit:
                break
        return found

    def _reg_rewrite(self, buffer_id: str, states: frozenset[str], **changes: Any) -> bool:
        """Change the record if its state is one of ``states``; whether it was changed."""
        with self._reg_hold("buffers", buffer_id):
            current = self._reg_stored(buffer_id)
            if current.state not in states:
                return False
            changed = buffer_to_doc(replace(current, **changes))
            atomic_write_json(self._reg_record(buffer_id), changed)
        return True

    def claim_buffer(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
                     parts: int = 1) -> Buffer:
        if not self._reg_rewrite(buffer_id, frozenset({CREATED}), state=WRITING, owner=owner,
                             run_id=run_id, parts=parts):
            raise not_claimable(self.get_buffer(buffer_id))
        return self.get_buffer(buffer_id)

    def set_buffer_owner(self, buffer_id: str, owner: Owner) -> None:
        self._reg_rewrite(buffer_id, frozenset({WRITING}), owner=owner)

    def add_buffer_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        check_chunk(chunk)
        with self._reg_hold("buffers", buffer_id):
            self._reg_stored(buffer_id)
            row = [chunk.part, chunk.seq, chunk.digest, chunk.size]
            append_records(self._reg_chunks(buffer_id), dumps(row) + b"\n")

    def buffer_chunks(self, buffer_id: str, part: int = 0, seq: int = 0) -> list[Chunk]:
        rows = read_json_lines(self._reg_chunks(known_buffer_id(buffer_id)))
        if not rows and not self._reg_record(buffer_id).exists():
            raise BufferNotFound(buffer_id)
        chosen = [Chunk(*row) for row in rows if (row[0], row[1]) >= (part, seq)]
        return sorted(chosen, key=lambda c: (c.part, c.seq))

    def finish_buffer(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        state = COMPLETE if complete else INCOMPLETE
        return self._reg_rewrite(buffer_id, frozenset({WRITING}), state=state, reason=reason)


def _codespec(name: str, row: dict[str, Any]) -> CodespecRecord:
    return CodespecRecord(name, int(row["version"]), float(row["created"]), str(row["digest"]),
                          dict(row["spec"]))
