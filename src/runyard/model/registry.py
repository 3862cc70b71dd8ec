"""What the run store keeps beside runs: codespec versions, buffers and their chunks.

They live in the run store (every backend, through the registry part of the ``RunStore``
protocol), so a team that shares a store shares its codespecs and buffers. A codespec's
content is kept as the plain mapping its YAML gives (the ``commands`` layer reads it into a
``Codespec``); versions are numbered from 1 per name by the store, atomically. A buffer is
written once, by the one writer that claimed it; its bytes are blobs, one per chunk, and a
chunk with no digest ends one part (a replica's share) of the buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runyard.model.codec import owner_from_dict, owner_to_dict
from runyard.model.records import Owner

CREATED, WRITING, COMPLETE, INCOMPLETE = "created", "writing", "complete", "incomplete"
FINAL_STATES = frozenset({COMPLETE, INCOMPLETE})
BUFFER_STATES = frozenset({CREATED, WRITING, COMPLETE, INCOMPLETE})


@dataclass(frozen=True)
class CodespecRecord:
    """One stored version of a codespec: ``spec`` is its content as a plain mapping."""

    name: str
    version: int
    created: float
    digest: str
    spec: dict[str, Any]


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
        """What ``buffer show --json`` prints (the owner is the store's business)."""
        return {"id": self.id, "created": self.created, "tags": self.tags, "state": self.state,
                "size": self.size, "parts": self.parts, "run_id": self.run_id,
                "reason": self.reason}


@dataclass(frozen=True)
class Chunk:
    part: int
    seq: int
    digest: str | None  # None: the end of the part
    size: int


def buffer_to_doc(buffer: Buffer) -> dict[str, Any]:
    """The whole buffer record as plain data (owner included), for the file stores."""
    doc = buffer.to_dict()
    doc["owner"] = None if buffer.owner is None else owner_to_dict(buffer.owner)
    return doc


def buffer_from_doc(doc: dict[str, Any]) -> Buffer:
    owner = doc.get("owner")
    return Buffer(id=doc["id"], created=doc["created"], tags=dict(doc.get("tags") or {}),
                  state=doc["state"], size=doc.get("size", 0), parts=doc.get("parts", 1),
                  run_id=doc.get("run_id"), reason=doc.get("reason"),
                  owner=None if owner is None else owner_from_dict(owner))


def tags_match(buffer: Buffer, tags: dict[str, str] | None) -> bool:
    return not tags or tags.items() <= buffer.tags.items()
