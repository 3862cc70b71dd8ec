"""The registry of a store context: codespec versions and buffers, kept in the run store.

A thin face over the registry part of the ``RunStore`` protocol that gives buffers their
ids and times and codespecs their "not found" hints. Codespec contents are plain mappings
here; ``runyard.commands.registry`` reads them into ``Codespec`` objects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from runyard.errors import CodespecNotFound
from runyard.model import Owner, new_id
from runyard.model.registry import Buffer, Chunk, CodespecRecord
from runyard.stores import RunStore


class Registry:
    """Codespecs and buffers of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    # -- codespecs --------------------------------------------------------------------------
    def add_codespec(self, name: str, digest: str,
                     spec: Mapping[str, Any]) -> tuple[CodespecRecord, bool]:
        """A new version of ``name`` unless its latest has ``digest``; whether it is new."""
        return self.store.add_codespec(name, digest, spec, time.time())

    def codespec(self, name: str, version: int | None = None, ref: str | None = None
                 ) -> CodespecRecord:
        """The latest version of ``name``, or ``version``; CodespecNotFound names ``ref``."""
        found = self.store.get_codespec(name, version)
        if found is None:
            raise CodespecNotFound(ref or name, self._hint(name, version))
        return found

    def _hint(self, name: str, version: int | None) -> str:
        latest = self.store.get_codespec(name)
        if version is None or latest is None:
            return "see `runyard codespec list`"
        return f"{name} has versions 1 to {latest.version}"

    def codespecs(self, name: str | None = None) -> list[CodespecRecord]:
        """The latest version of every codespec, or every version of ``name``."""
        return self.store.list_codespecs(name)

    # -- buffers ----------------------------------------------------------------------------
    def create_buffer(self, tags: Mapping[str, str] | None = None) -> Buffer:
        return self.store.create_buffer(Buffer(id=new_id(), created=time.time(),
                                               tags=dict(tags or {})))

    def buffer(self, buffer_id: str) -> Buffer:
        return self.store.get_buffer(buffer_id)

    def buffers(self, tags: Mapping[str, str] | None = None,
                limit: int | None = None) -> list[Buffer]:
        return self.store.list_buffers(tags, limit)

    def claim(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
              parts: int = 1) -> Buffer:
        """Make ``owner`` (or run ``run_id``) the one writer of a fresh buffer."""
        return self.store.claim_buffer(buffer_id, owner, run_id, parts)

    def set_owner(self, buffer_id: str, owner: Owner) -> None:
        self.store.set_buffer_owner(buffer_id, owner)

    def add_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        self.store.add_buffer_chunk(buffer_id, chunk)

    def chunks_after(self, buffer_id: str, part: int, seq: int) -> list[Chunk]:
        """The chunks at or after (``part``, ``seq``), in order."""
        return self.store.buffer_chunks(buffer_id, part, seq)

    def finish(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        """End the writing of a buffer; False if it had ended already."""
        return self.store.finish_buffer(buffer_id, complete, reason)
