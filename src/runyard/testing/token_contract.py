"""The token part of the store contract: a server's API tokens, kept hashed in its store.

Not part of ``RunStoreContract``: the ``http://`` store does not manage tokens (they are the
server's own). A store that keeps tokens subclasses ``TokenStoreContract`` and gives a
``store`` fixture, as for ``RunStoreContract``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from runyard.errors import ConflictError, NotFoundError, TokenNotFound, ValidationError
from runyard.model import TokenRecord
from runyard.stores import open_store
from runyard.stores.base import RunStore


def token(name: str, secret: str | None = None, **fields: Any) -> TokenRecord:
    digest = hashlib.sha256((secret or f"ry_{name}-secret").encode()).hexdigest()
    return TokenRecord(**{"name": name, "digest": digest, "read_only": False,
                          "created": 1000.5, **fields})


class TokenStoreContract:
    """Behaviour of every store that keeps tokens; the subclass provides ``store``."""

    def test_a_token_is_found_by_its_digest(self, store: RunStore) -> None:
        alice = store.add_token(token("alice"))
        reader = store.add_token(token("reader", read_only=True))
        assert store.find_token(alice.digest) == alice
        assert store.find_token(reader.digest) == reader
        assert store.find_token(token("nobody").digest) is None

    def test_tokens_are_listed_by_name(self, store: RunStore) -> None:
        assert store.list_tokens() == []
        made = [store.add_token(token(name)) for name in ("carol", "alice", "bob")]
        assert store.list_tokens() == sorted(made, key=lambda t: t.name)

    def test_a_name_is_taken_once(self, store: RunStore) -> None:
        store.add_token(token("alice"))
        with pytest.raises(ConflictError):
            store.add_token(token("alice", secret="another secret"))
        with pytest.raises(ConflictError):  # and a secret too
            store.add_token(token("bob", secret="ry_alice-secret"))
        assert [t.name for t in store.list_tokens()] == ["alice"]

    def test_revoking_keeps_the_token_and_its_first_time(self, store: RunStore) -> None:
        alice = store.add_token(token("alice"))
        done = store.revoke_token("alice", now=2000.0)
        assert done == replace(alice, revoked=2000.0)
        assert store.revoke_token("alice", now=3000.0).revoked == 2000.0
        assert store.find_token(alice.digest) == done  # found, revoked
        assert store.list_tokens() == [done]
        later = store.add_token(token("bob")).name
        assert store.revoke_token(later).revoked is not None  # now, by default

    def test_revoking_an_unknown_token(self, store: RunStore) -> None:
        with pytest.raises(TokenNotFound) as raised:
            store.revoke_token("ghost")
        assert isinstance(raised.value, NotFoundError) and "ghost" in str(raised.value)

    @pytest.mark.parametrize("bad", [
        {"name": ""}, {"name": "a b"}, {"name": "../up"}, {"name": "x" * 129},
        {"digest": "not-hex"}, {"digest": "A" * 64}, {"digest": "a" * 63},
        {"read_only": "no"}, {"created": float("nan")}, {"revoked": "soon"},
    ])
    def test_bad_tokens_are_refused(self, store: RunStore, bad: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            store.add_token(replace(token("good"), **bad))
        assert store.list_tokens() == []

    def test_a_revoked_token_is_seen_at_once_by_another_opening(self, store: RunStore) -> None:
        alice = store.add_token(token("alice"))
        other = open_store(store.url)  # (another worker: nothing may be cached)
        try:
            assert other.find_token(alice.digest) == alice
            store.revoke_token("alice", now=5.0)
            found = other.find_token(alice.digest)
            assert found is not None and found.revoked == 5.0
            other.add_token(token("bob"))
            assert [t.name for t in store.list_tokens()] == ["alice", "bob"]
        finally:
            if other is not store:
                other.close()
