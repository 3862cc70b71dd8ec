"""The registry part of the ``http(s)://`` store: codespecs, buffers and chunks over REST.

Kept apart from ``http`` to keep each module small; ``HttpStore`` inherits it. The writes that
are not naturally idempotent (creating and claiming a buffer, adding a chunk) check, after a
conflict that an earlier try of theirs may have caused, whether that try did the work (a chunk
is recorded once per part and number, so a resent one is never counted twice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from runyard.errors import BufferNotFound, CodespecNotFound, ConflictError
from runyard.model import Owner
from runyard.model.codec import owner_to_dict
from runyard.model.registry import (
    COMPLETE,
    INCOMPLETE,
    Buffer,
    Chunk,
    CodespecRecord,
    buffer_from_doc,
    buffer_to_doc,
)
from runyard.stores.httpclient import HttpClient, segment


class RegistryOverHttp:
    """``RegistryStore`` over a server's ``/codespecs`` and ``/buffers`` routes."""

    client: HttpClient

    # -- codespecs -----------------------------------------------------------------------------
    def add_codespec(self, name: str, digest: str, spec: Mapping[str, Any], created: float,
                     number: int | None = None) -> tuple[CodespecRecord, bool]:
        doc = self.client.call("POST", "/codespecs", {
            "name": name, "digest": digest, "spec": dict(spec), "created": created,
            "number": number})
        return CodespecRecord(**doc["codespec"]), bool(doc["added"])

    def get_codespec(self, name: str, version: int | None = None) -> CodespecRecord | None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return None  # (no codespec has such a name; it must not reach another route)
        try:
            doc = self.client.call("GET", f"/codespecs/{segment(name)}",
                                   params={"version": version})
        except CodespecNotFound:
            return None
        return CodespecRecord(**doc)

    def list_codespecs(self, name: str | None = None) -> list[CodespecRecord]:
        doc = self.client.call("GET", "/codespecs", params={"name": name})
        return [CodespecRecord(**c) for c in doc["codespecs"]]

    # -- buffers -------------------------------------------------------------------------------
    def create_buffer(self, buffer: Buffer) -> Buffer:
        try:
            reply = self.client.send("POST", "/buffers", buffer_to_doc(buffer))
        except ConflictError as exc:
            if getattr(exc, "resent", False) and self.get_buffer(buffer.id) == buffer:
                return buffer
            raise
        return buffer_from_doc(reply.json())

    def get_buffer(self, buffer_id: str) -> Buffer:
        return buffer_from_doc(self.client.call("GET", f"/buffers/{bid(buffer_id)}"))

    def list_buffers(self, tags: Mapping[str, str] | None = None,
                     limit: int | None = None) -> list[Buffer]:
        query = [("tag", f"{k}={v}") for k, v in sorted((tags or {}).items())]
        doc = self.client.call("GET", "/buffers", params=[*query, ("limit", limit)])
        return [buffer_from_doc(b) for b in doc["buffers"]]

    def claim_buffer(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
                     parts: int = 1) -> Buffer:
        body = {"owner": None if owner is None else owner_to_dict(owner), "run_id": run_id,
                "parts": parts}
        try:
            reply = self.client.send("POST", f"/buffers/{bid(buffer_id)}/claim", body)
        except ConflictError as exc:
            if getattr(exc, "resent", False):
                found = self.get_buffer(buffer_id)
                if found.owner == owner and found.run_id == run_id and found.parts == parts:
                    return found
            raise
        return buffer_from_doc(reply.json())

    def set_buffer_owner(self, buffer_id: str, owner: Owner) -> None:
        self.client.send("PUT", f"/buffers/{bid(buffer_id)}/owner",
                         {"owner": owner_to_dict(owner)})

    def add_buffer_chunk(self, buffer_id: str, chunk: Chunk) -> None:
        try:
            self.client.send("POST", f"/buffers/{bid(buffer_id)}/chunks", asdict(chunk))
        except ConflictError as exc:  # chunks are recorded once: was it my earlier try?
            if not getattr(exc, "resent", False) or \
                    chunk not in self.buffer_chunks(buffer_id, chunk.part, chunk.seq)[:1]:
                raise

    def buffer_chunks(self, buffer_id: str, part: int = 0, seq: int = 0) -> list[Chunk]:
        doc = self.client.call("GET", f"/buffers/{bid(buffer_id)}/chunks",
                               params={"part": part, "seq": seq})
        return [Chunk(**c) for c in doc["chunks"]]

    def finish_buffer(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        reply = self.client.send("POST", f"/buffers/{bid(buffer_id)}/finish",
                                 {"complete": complete, "reason": reason})
        if reply.json()["finished"]:
            return True
        if not reply.resent:
            return False
        found = self.get_buffer(buffer_id)  # an earlier try of mine may have finished it
        return found.state == (COMPLETE if complete else INCOMPLETE) and found.reason == reason


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")  # codespec names and buffer ids


def bid(buffer_id: str) -> str:
    """A buffer id as a path segment; BufferNotFound for one no buffer can have."""
    if not isinstance(buffer_id, str) or not _NAME.fullmatch(buffer_id):
        raise BufferNotFound(str(buffer_id))
    return buffer_id
