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

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_servers import GROUP, LiveServer
from runyard.errors import ValidationError
from runyard.stores import RunStore, open_store
from runyard.testing import RunStoreContract, make_run

pytestmark = pytest.mark.xdist_group(GROUP)


@pytest.fixture(params=["sqlite", "postgres"])
def http_server(request: pytest.FixtureRequest) -> LiveServer:
    server: LiveServer = request.getfixturevalue(f"live_{request.param}")
    server.wipe()
    return server


@pytest.fixture
def http_store(http_server: LiveServer, monkeypatch: pytest.MonkeyPatch,
               tmp_path: Path) -> Iterator[RunStore]:
    monkeypatch.setenv("RUNYARD_TOKEN", http_server.token)
    monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))
    store = open_store(http_server.url)
    try:
        yield store
    finally:
        store.close()


class TestHttpContract(RunStoreContract):
    @pytest.fixture
    def store(self, http_store: RunStore) -> RunStore:
        return http_store


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**70, -(2**70), "\udc80"],
                         ids=["nan", "inf", "-inf", "2**70", "-2**70", "lone-surrogate"])
def test_a_value_json_cannot_carry_is_kept_or_refused_never_changed(http_store: RunStore,
                                                                    value: object) -> None:
    """Like the local stores: metadata comes back as given, or ValidationError and nothing
    written (PostgreSQL refuses NaN so); never silently changed, never a non-runyard error."""
    run = http_store.create_run(make_run())
    try:
        http_store.merge_metadata(run.id, {"x": value, "y": 1})
    except ValidationError:
        assert http_store.get_run(run.id).metadata == {}
        return
    kept = http_store.get_run(run.id).metadata
    assert kept["y"] == 1
    assert kept["x"] == value or (value != value and kept["x"] != kept["x"]), kept


def test_an_http_store_is_the_server_and_not_a_local_store(http_server: LiveServer,
                                                           http_store: RunStore) -> None:
    assert type(http_store).__module__ == "runyard.stores.http"
    assert http_store.url.startswith(http_server.url)
