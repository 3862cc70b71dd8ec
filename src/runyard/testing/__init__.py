"""Test support shipped with runyard: the store contract suite and record factories.

A third-party store reuses the contract suite by subclassing it and providing a ``store``
fixture::

    from runyard.testing import RunStoreContract

    class TestMyStore(RunStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            with MyStore(tmp_path) as s:
                yield s
"""

from runyard.testing.contract import RunStoreContract
from runyard.testing.factories import make_run
from runyard.testing.token_contract import TokenStoreContract

__all__ = ["RunStoreContract", "TokenStoreContract", "make_run"]
