"""The run-list watch (``GET /watch/runs``) beyond the newest runs, through a live server.

The list watch follows the newest ``limit`` runs and also every active run that matches,
however old, so the dashboard sees an old running run end. A run that leaves what is followed
is ``removed`` only when it is deleted or no longer matches; merely pushed down by newer runs
it is no news. Real uvicorn on 127.0.0.1 over SQLite and the memory store; the test writes
through the store itself and reads the stream over a socket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.model import RunRecord, Status, new_id
from server_helpers import Served, served, token
from test_server_streams import Sse, watch


@pytest.fixture(params=["sqlite", "memory"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    # a memory store of its own: ``memory://NAME`` is one store per name for the process
    url = (f"sqlite:///{tmp_path}/runyard.db" if request.param == "sqlite"
           else f"memory://watch-{uuid.uuid4().hex}")
    with served(url) as server:
        yield server


@pytest.fixture
def api(live: Served) -> Iterator[httpx.Client]:
    with live.client(token(live.store)) as client:
        yield client


def new_run(live: Served, status: Status = Status.RUNNING, **fields: Any) -> RunRecord:
    """A run in the server's store, running, then moved to ``status`` (running or an end)."""
    run = live.store.create_run(RunRecord(id=new_id(), name=f"r-{new_id()[-8:].lower()}",
                                          **fields))
    run = live.store.update_status(run.id, Status.RUNNING)
    return run if status is Status.RUNNING else live.store.update_status(run.id, status)


def burst(sse: Sse, live: Served) -> tuple[list[tuple[str, Any]], RunRecord]:
    """Every event up to a marker: a new run created now (its event comes at the next poll,
    after what the stream had to say before it), and that run."""
    marker = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    seen: list[tuple[str, Any]] = []
    while True:
        kind, data = sse.next()
        if kind == "closed" or data.get("id") == marker.id:
            return seen, marker
        seen.append((kind, data))


def test_an_old_running_run_beyond_the_newest_is_followed_until_it_ends(
        live: Served, api: httpx.Client) -> None:
    old = new_run(live, tags=frozenset({"keep"}))
    newer = [new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"})) for _ in range(3)]
    with watch(api, "/watch/runs", tag="keep", limit=2) as answer:
        sse = Sse(answer)
        first = {sse.next()[1]["id"] for _ in range(3)}
        assert first == {old.id, newer[2].id, newer[1].id}
        live.store.update_status(old.id, Status.FAILED, "exit 1")
        kind, data = sse.next()
        assert (kind, data["id"], data["status"]) == ("run", old.id, "failed")
        live.store.rename_run(old.id, "renamed-after-its-end")  # no longer followed
        seen, _ = burst(sse, live)
    assert seen == []


def test_a_run_pushed_below_the_newest_is_not_removed_but_a_deleted_one_is(
        live: Served, api: httpx.Client) -> None:
    first = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    second = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    with watch(api, "/watch/runs", tag="keep", limit=2) as answer:
        sse = Sse(answer)
        assert {sse.next()[1]["id"] for _ in range(2)} == {first.id, second.id}
        seen, marker = burst(sse, live)  # the marker pushes `first` below the newest two
        assert seen == []
        live.store.delete_run(second.id)
        assert sse.next() == ("removed", {"id": second.id})
        kind, data = sse.next()  # `first` is among the newest two again
        assert (kind, data["id"]) == ("run", first.id)
        live.store.delete_run(marker.id)
        assert sse.next() == ("removed", {"id": marker.id})


def test_a_followed_run_that_stops_matching_is_removed(live: Served,
                                                       api: httpx.Client) -> None:
    old = new_run(live, tags=frozenset({"keep"}))
    newer = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    with watch(api, "/watch/runs", tag="keep", status=["running", "succeeded"],
               limit=1) as answer:
        sse = Sse(answer)
        assert {sse.next()[1]["id"] for _ in range(2)} == {old.id, newer.id}
        live.store.remove_tags(old.id, ["keep"])
        assert sse.next() == ("removed", {"id": old.id})


def test_an_old_run_leaving_a_status_filter_is_removed(live: Served,
                                                      api: httpx.Client) -> None:
    old = new_run(live)
    for _ in range(2):
        new_run(live)
    with watch(api, "/watch/runs", status="running", limit=1) as answer:
        sse = Sse(answer)
        assert old.id in {sse.next()[1]["id"] for _ in range(3)}
        live.store.update_status(old.id, Status.SUCCEEDED)
        assert sse.next() == ("removed", {"id": old.id})


def test_the_active_runs_followed_are_the_newest_thousand(live: Served,
                                                         api: httpx.Client) -> None:
    runs = [new_run(live, tags=frozenset({"keep"})) for _ in range(1_003)]
    with watch(api, "/watch/runs", tag="keep", limit=1) as answer:
        seen, _ = burst(Sse(answer), live)
    sent = [data["id"] for kind, data in seen if kind == "run"]
    assert len(sent) == len(set(sent)) == 1_000
    assert set(sent) == {run.id for run in runs[-1_000:]}


def test_a_filter_of_final_statuses_follows_only_the_newest(live: Served,
                                                           api: httpx.Client) -> None:
    """The active runs followed are those the filter's own statuses allow: none here."""
    old = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    new_run(live, tags=frozenset({"keep"}))  # running: not in the filtered list
    newest = new_run(live, Status.SUCCEEDED, tags=frozenset({"keep"}))
    with watch(api, "/watch/runs", tag="keep", status="succeeded", limit=1) as answer:
        sse = Sse(answer)
        assert sse.next()[1]["id"] == newest.id
        seen, _ = burst(sse, live)
    assert old.id not in {data["id"] for _, data in seen}
    assert all(kind == "removed" or data["status"] == "succeeded" for kind, data in seen)
