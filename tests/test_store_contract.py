"""The shipped contract suite, run against every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runyard.stores import RunStore, open_store
from runyard.testing import RunStoreContract, TokenStoreContract


class TestContract(RunStoreContract):
    @pytest.fixture
    def store(self, store_url: str) -> Iterator[RunStore]:
        store = open_store(store_url)
        try:
            yield store
        finally:
            store.close()


class TestTokens(TokenStoreContract):
    @pytest.fixture
    def store(self, store_url: str) -> Iterator[RunStore]:
        store = open_store(store_url)
        try:
            yield store
        finally:
            store.close()
