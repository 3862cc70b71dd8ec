"""API tokens of a runyard server, as its store keeps them.

A server hands a token's secret out once, at creation; the store keeps only the SHA-256 of it
(``digest``), so a copy of the store gives nobody a working token. Tokens are looked up by that
digest on every request, never cached, so a revoked token stops working at once in every
server worker.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TokenRecord:
    name: str  # unique; the rule of codespec names
    digest: str  # sha256 hex of the secret
    read_only: bool
    created: float
    revoked: float | None = None
