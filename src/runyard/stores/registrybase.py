"""The registry part of the ``RunStore`` contract: codespec versions, buffers, chunks.

Every backend keeps them in the run store itself, so whoever shares a store shares them. The
two steps that must be atomic across processes are the store's: numbering a codespec's next
version (``add_codespec``) and making one writer the owner of a fresh buffer
(``claim_buffer``). Names and ids are checked here, once, for every backend (the file stores
use them as file names).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from runyard.errors import BufferNotFound, ConflictError, ValidationError
from runyard.model import Owner, TokenRecord
from runyard.model.registry import Buffer, Chunk, CodespecRecord

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,127}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class RegistryStore(Protocol):
    """Codespecs and buffers, kept in the run store. Unknown buffer ids raise BufferNotFound."""

    def add_codespec(self, name: str, digest: str, spec: Mapping[str, Any], created: float,
                     number: int | None = None) -> tuple[CodespecRecord, bool]: ...
    # a new version numbered after the latest, unless the latest has ``digest``: then that
    # one and False. Atomic: two processes adding at once get two versions, never one twice.
    # With ``number`` (a copy keeping numbers): added as that version if it is the next one;
    # if the store has that version already, it is returned (False) whatever its content;
    # ConflictError if it would leave a gap.
    def get_codespec(self, name: str, version: int | None = None) -> CodespecRecord | None: ...
    # the latest version when ``version`` is None; None when there is no such one
    def list_codespecs(self, name: str | None = None) -> list[CodespecRecord]: ...
    # the latest version of each name (by name), or every version of ``name`` (by version)

    def create_buffer(self, buffer: Buffer) -> Buffer: ...  # ConflictError if the id is taken
    def get_buffer(self, buffer_id: str) -> Buffer: ...
    def list_buffers(self, tags: Mapping[str, str] | None = None,
                     limit: int | None = None) -> list[Buffer]: ...  # newest first
    def claim_buffer(self, buffer_id: str, owner: Owner | None, run_id: str | None = None,
                     parts: int = 1) -> Buffer: ...
    # the one writer of a buffer still ``created``; else ConflictError. Atomic.
    def set_buffer_owner(self, buffer_id: str, owner: Owner) -> None: ...  # while writing
    def add_buffer_chunk(self, buffer_id: str, chunk: Chunk) -> None: ...  # adds its size
    def buffer_chunks(self, buffer_id: str, part: int = 0, seq: int = 0) -> list[Chunk]: ...
    # the chunks at or after (part, seq), in order
    def finish_buffer(self, buffer_id: str, complete: bool, reason: str | None = None) -> bool:
        ...  # complete or incomplete, if it was being written; False if it had ended


class TokenStore(Protocol):
    """A server's API tokens (see ``model.tokens``). Never cached: every call reads the store."""

    def add_token(self, token: TokenRecord) -> TokenRecord: ...  # ConflictError: name taken
    def find_token(self, digest: str) -> TokenRecord | None: ...  # by digest, revoked or not
    def list_tokens(self) -> list[TokenRecord]: ...  # by name
    def revoke_token(self, name: str, now: float | None = None) -> TokenRecord: ...
    # TokenNotFound if no token has that name; revoking twice keeps the first time


def check_token(token: TokenRecord) -> TokenRecord:
    """``token`` if its fields can be stored (name as a codespec's, digest sha256 hex)."""
    if not isinstance(token.name, str) or not _NAME.fullmatch(token.name):
        raise ValidationError(f"invalid token name {token.name!r}: use letters, digits, '.', "
                              "'_' and '-', starting with a letter or digit")
    if not isinstance(token.digest, str) or not _DIGEST.fullmatch(token.digest):
        raise ValidationError("a token's digest is the sha256 hex of its secret (64 of 0-9a-f)")
    if not isinstance(token.read_only, bool) or not _time(token.created) \
            or not (token.revoked is None or _time(token.revoked)):
        raise ValidationError(f"token {token.name}: read_only is a bool, created and revoked "
                              "are epoch seconds")
    return token


def _time(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value and abs(value) < 1e12


def revoked(token: TokenRecord, now: float | None) -> TokenRecord:
    """``token`` revoked at ``now`` (the time of day by default), or as it is if it was."""
    if token.revoked is not None:
        return token
    return replace(token, revoked=time.time() if now is None else now)


def token_taken(name: str) -> ConflictError:
    return ConflictError(f"a token named {name} already exists; revoke it or pick another name")


def secret_taken() -> ConflictError:
    return ConflictError("a token with this secret exists already; make a new secret")


def check_codespec_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"invalid codespec name {name!r}: use letters, digits, '.', '_' "
                              "and '-', starting with a letter or digit")
    return name


def check_buffer_id(buffer_id: object) -> str:
    if not isinstance(buffer_id, str) or not _ID.fullmatch(buffer_id):
        raise ValidationError(f"invalid buffer id {buffer_id!r}: use the id `runyard buffer "
                              "create` printed")
    return buffer_id


def known_buffer_id(buffer_id: str) -> str:
    """``buffer_id`` if it could name a buffer, else BufferNotFound (for reads)."""
    if not isinstance(buffer_id, str) or not _ID.fullmatch(buffer_id):
        raise BufferNotFound(str(buffer_id))
    return buffer_id


def check_chunk(chunk: Chunk) -> Chunk:
    if chunk.part < 0 or chunk.seq < 0 or chunk.size < 0 or chunk.part >= 1 << 31 \
            or chunk.seq >= 1 << 31:
        raise ValidationError(f"invalid buffer chunk {chunk}: part, seq and size must be "
                              "small non-negative numbers")
    return chunk


def numbered(name: str, number: int | None, latest: int) -> bool:
    """Whether a version numbered ``number`` is to be added after ``latest`` (False: the store
    has it); ConflictError if it would leave a gap."""
    if number is None or number == latest + 1:
        return True
    if 0 < number <= latest:
        return False
    raise ConflictError(f"codespec {name} has versions up to {latest}: version {number} "
                        "cannot be added before the ones between")


def not_claimable(buffer: Buffer) -> ConflictError:
    return ConflictError(f"buffer {buffer.id} already has data ({buffer.state}); buffers are "
                         "written once: create a new one")


def buffer_taken(buffer_id: str) -> ConflictError:
    return ConflictError(f"a buffer with id {buffer_id} already exists")
