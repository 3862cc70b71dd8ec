"""The shipped store contract over ``http://``, against live ``runyard server`` processes.

Two servers for the session (``tests/live_servers.py``): one over SQLite with one worker, one
over the tests' real PostgreSQL with four workers, so connections (the pooled client's, the
race tests' processes') are served by different processes and anything a worker kept in
memory would show. Every test starts from an
empty store (wiped through a connection of its own) and reaches it only through the
``HttpStore`` that ``open_store`` gives for the server's URL, with the writer's token from
``RUNYARD_TOKEN`` (inherited by the processes the race tests spawn).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from live_servers import GROUP, LiveServer
from runyard.stores import RunStore, open_store
from runyard.testing import RunStoreContract

pytestmark = pytest.mark.xdist_group(GROUP)


@pytest.fixture(params=["sqlite", "postgres"])
def http_server(request: pytest.FixtureRequest) -> LiveServer:
    server: LiveServer = request.getfixturevalue(f"live_{request.param}")
    server.wipe()
    return server


class TestHttpContract(RunStoreContract):
    @pytest.fixture
    def store(self, http_server: LiveServer, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Iterator[RunStore]:
        monkeypatch.setenv("RUNYARD_TOKEN", http_server.token)
        monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))
        store = open_store(http_server.url)
        try:
            yield store
        finally:
            store.close()


def test_an_http_store_is_the_server_and_not_a_local_store(
        http_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_TOKEN", http_server.token)
    store = open_store(http_server.url)
    try:
        assert type(store).__module__ == "runyard.stores.http"
        assert store.url.startswith(http_server.url)
    finally:
        store.close()
