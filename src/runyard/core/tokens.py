"""API tokens of a runyard server: made, hashed and checked in one place.

A token's text is ``ry_`` and 43 url-safe characters (32 random bytes); the store keeps only
its SHA-256 (``TokenRecord.digest``), so the text is shown once, when it is made. The server
(``runyard.server.auth``) and the command line (``runyard server token …``) both use these
functions, so the two never disagree on what a token is. Nothing is cached: each check asks
the store, so a revoked token stops working at once in every server process.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from runyard.model import TokenRecord
from runyard.stores import RunStore

PREFIX = "ry_"
MIN_SECRET = 32  # url-safe characters after the prefix


def new_text() -> str:
    """A fresh token text: ``ry_`` and 43 url-safe characters."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(text: str) -> str:
    """The SHA-256 hex of a token's whole text: what the store keeps and looks up."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def well_formed(text: str) -> bool:
    """Whether ``text`` could be a token (checked before the store is asked)."""
    return (text.startswith(PREFIX) and len(text) - len(PREFIX) >= MIN_SECRET
            and len(text) <= 512 and text.isascii() and text.isprintable())


def create(store: RunStore, name: str, *, read_only: bool = False,
           now: float | None = None) -> tuple[str, TokenRecord]:
    """Make a token named ``name`` and keep its digest; its text, returned here, is not kept
    anywhere (ConflictError if the name is taken, ValidationError if it is malformed)."""
    text = new_text()
    record = TokenRecord(name=name, digest=digest(text), read_only=read_only,
                         created=time.time() if now is None else now)
    return text, store.add_token(record)


def find(store: RunStore, text: str) -> TokenRecord | None:
    """The token whose text is ``text``, revoked or not (None if unknown or malformed)."""
    if not well_formed(text):
        return None
    return store.find_token(digest(text))


def revoke(store: RunStore, name: str) -> TokenRecord:
    """Revoke the token named ``name`` (TokenNotFound if none); it stops working at once."""
    return store.revoke_token(name)


def token_to_dict(token: TokenRecord) -> dict[str, object]:
    """A token as ``token list --json`` shows it: everything but its digest."""
    return {"name": token.name, "read_only": token.read_only, "created": token.created,
            "revoked": token.revoked}
