"""The registry (codespecs, buffers, chunks, tokens) of the ``memory://`` store: dicts under
its lock."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runyard.errors import BufferNotFound, TokenNotFound
from runyard.model import Owner, TokenRecord
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
    check_token,
    not_claimable,
    numbered,
    revoked,
    secret_taken,
    token_taken,
)


@dataclass
class _Tables:
    codespecs: dict[str, list[CodespecRecord]] = field(default_factory=dict)
    buffers: dict[str, Buffer] = field(default_factory=dict)
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)


class MemoryRegistry:
    """Mixed into ``MemoryStore``; every step holds the store's lock (``_lock``)."""

    _lock: threading.RLock

    def _reg_tables(self) -> _Tables:
        with self._lock:
            return self.__dict__.setdefault("_registry_tables", _Tables())  # type: ignore

    # -- codespecs --------------------------------------------------------------------------
    def add_codespec(self, name: str, digest: str, spec: Mapping[str, Any], created: float,
                     number: int | None = None) -> tuple[CodespecRecord, bool]:
        check_codespec_name(name)
        with self._lock:
            versions = self._reg_tables().codespecs.setdefault(name, [])
            if not numbered(name, number, len(versions)):
                return versions[number - 1], False  # type: ignore[operator]
            if number is None and versions and versions[-1].digest == digest:
                return versions[-1], False
            record = CodespecRecord(name, len(versions) + 1, created, digest,
                                    copy.deepcopy(dict(spec)))
            versions.append(record)
            return record, True

    def get_codespec(self, name: str, version: int | None = None) -> CodespecRecord | None:
        with self._lock:
            versions = self._reg_tables().codespecs.get(name, [])
            if version is None:
                return versions[-1] if versions else None
            return versions[version - 1] if 0 < version <= len(versions) else None

    def list_codespecs(self, name: str | None = None) -> list[CodespecRecord]:
        with self._lock:
            tables = self._reg_tables().codespecs
            if name is not None:
                return list(tables.get(name, []))
            return [tables[n][-1] for n in sorted(tables) if tables[n]]

    # -- buffers ----------------------------------------------------------------------------
    def create_buffer(self, buffer: Buffer) -> Buffer:
        check_buffer_id(buffer.id)
        with self._lock:
            tables = self._reg_tables()
            if buffer.id in tables.buffers:
                raise buffer_taken(buffer.id)
            tables.buffers[buffer.id] = buffer
            tables.chunks[buffer.id] = []
        return buffer

    def get_buffer(self, buffer_id: str) -> Buffer:
        with self._lock:
            try:
                return self._reg_tables().buffers[buffer_id]
            except KeyError:
                raise BufferNotFound(buffer_id) from None

    def list_buffers(self, tags: Mapping[str, str] | None = None,
                     limit: int | None = None) -> list[Buffer]:
        with self._lock:
            found = sorted(self._reg_tables().buffers.values(), key=lambda b: b.id, reverse=True)
        chosen = [b for b in found if tags_match(b, dict(tags or {}))]
        return chosen if limit is None else chosen[:limit]

    def claim_buffer(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
                     parts: int = 1) -> Buffer:
        with self._lock:
            current = self.get_buffer(buffer_id)
            if current.state != CREATED:
                raise not_claimable(current)
            return self._reg_put(replace(current, state=WRITING, owner=owner, run_id=run_id,
                                     parts=parts))

    def set_buffer_owner(self, buffer_id: str, owner: Owner) -> None:
        with self._lock:
            current = self.get_buffer(buffer_id)
            if current.state == WRITING:
                self._reg_put(replace(current, owner=owner))

    def add_buffer_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        check_chunk(chunk)
        with self._lock:
            current = self.get_buffer(buffer_id)
            self._reg_tables().chunks[buffer_id].append(chunk)
            self._reg_put(replace(current, size=current.size + chunk.size))

    def buffer_chunks(self, buffer_id: str, part: int = 0, seq: int = 0) -> list[Chunk]:
        with self._lock:
            self.get_buffer(buffer_id)
            found = self._reg_tables().chunks[buffer_id]
        chosen = [c for c in found if (c.part, c.seq) >= (part, seq)]
        return sorted(chosen, key=lambda c: (c.part, c.seq))

    def finish_buffer(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        with self._lock:
            current = self.get_buffer(buffer_id)
            if current.state != WRITING:
                return False
            self._reg_put(replace(current, state=COMPLETE if complete else INCOMPLETE,
                              reason=reason))
            return True

    # -- tokens -----------------------------------------------------------------------------
    def add_token(self, token: TokenRecord) -> TokenRecord:
        check_token(token)
        with self._lock:
            tokens = self._reg_tables().tokens
            if token.name in tokens:
                raise token_taken(token.name)
            if any(t.digest == token.digest for t in tokens.values()):
                raise secret_taken()
            tokens[token.name] = token
        return token

    def find_token(self, digest: str) -> TokenRecord | None:
        with self._lock:
            found = self._reg_tables().tokens.values()
            return next((t for t in found if t.digest == digest), None)

    def list_tokens(self) -> list[TokenRecord]:
        with self._lock:
            tokens = self._reg_tables().tokens
            return [tokens[name] for name in sorted(tokens)]

    def revoke_token(self, name: str, now: float | None = None) -> TokenRecord:
        with self._lock:
            tokens = self._reg_tables().tokens
            if name not in tokens:
                raise TokenNotFound(name)
            tokens[name] = revoked(tokens[name], now)
            return tokens[name]

    def _reg_put(self, buffer: Buffer) -> Buffer:
        self._reg_tables().buffers[buffer.id] = buffer
        return buffer
