"""A server's API tokens in the ``file:`` and ``chunked:`` stores.

``<dir>/.registry/tokens/tokens.json`` holds every token (``{"tokens": [record, ...]}``),
replaced atomically under ``tokens.lock`` beside it, so two writers never lose each other's
token. Reads take no lock (the file is only ever replaced whole) and nothing is cached: a
token revoked by one server worker is refused by every other at once.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from runyard.errors import StoreError, TokenNotFound
from runyard.model import TokenRecord
from runyard.stores.fileregistry import REGISTRY, FileRegistry
from runyard.stores.files import atomic_write_json, read_json
from runyard.stores.registrybase import check_token, revoked, secret_taken, token_taken

KIND = "tokens"
FILE = "tokens.json"


class FileTokens(FileRegistry):
    """Mixed into the file stores (after ``FileRegistry``, whose folder and locks it uses)."""

    def add_token(self, token: TokenRecord) -> TokenRecord:
        check_token(token)
        with self._reg_hold(KIND, KIND) as folder:
            tokens = _read(folder / FILE)
            if any(t.name == token.name for t in tokens):
                raise token_taken(token.name)
            if any(t.digest == token.digest for t in tokens):
                raise secret_taken()
            _write(folder / FILE, [*tokens, token])
        return token

    def find_token(self, digest: str) -> TokenRecord | None:
        found = _read(self.root / REGISTRY / KIND / FILE)
        return next((t for t in found if t.digest == digest), None)

    def list_tokens(self) -> list[TokenRecord]:
        return sorted(_read(self.root / REGISTRY / KIND / FILE), key=lambda t: t.name)

    def revoke_token(self, name: str, now: float | None = None) -> TokenRecord:
        with self._reg_hold(KIND, KIND) as folder:
            tokens = _read(folder / FILE)
            for at, token in enumerate(tokens):
                if token.name == name:
                    if token.revoked is None:
                        tokens[at] = token = revoked(token, now)
                        _write(folder / FILE, tokens)
                    return token
        raise TokenNotFound(name)


def _read(path: Path) -> list[TokenRecord]:
    try:
        doc: Any = read_json(path)
    except FileNotFoundError:
        return []
    try:
        return [TokenRecord(**entry) for entry in doc["tokens"]]
    except (KeyError, TypeError) as exc:
        raise StoreError(f"{path} is malformed ({exc!r}); restore it or remove it") from exc


def _write(path: Path, tokens: list[TokenRecord]) -> None:
    atomic_write_json(path, {"tokens": [asdict(t) for t in tokens]})
