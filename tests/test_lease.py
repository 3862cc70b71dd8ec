"""The run lease: owner, heartbeat, cancel request and final status, on every backend."""

from __future__ import annotations

import time

import pytest

from runyard.core.lease import Lease
from runyard.model import Owner, Status
from runyard.processes.owners import this_owner
from runyard.stores import RunStore, open_store
from runyard.testing.factories import make_run


@pytest.fixture
def store(store_url: str) -> RunStore:
    return open_store(store_url)


def running(store: RunStore) -> str:
    run = store.create_run(make_run())
    store.update_status(run.id, Status.RUNNING)
    return run.id


def test_take_records_this_process_as_owner_with_a_heartbeat(store: RunStore) -> None:
    run_id = running(store)
    before = time.time()
    run = Lease(store, run_id, heartbeat_s=10).take()
    assert run.owner == this_owner()
    assert run.heartbeat is not None and run.heartbeat >= before - 1


def test_a_lost_run_whose_owner_beats_again_runs_again(store: RunStore) -> None:
    run_id = running(store)
    lease = Lease(store, run_id, heartbeat_s=10)
    lease.take()
    store.update_status(run_id, Status.LOST, "no heartbeat")
    assert lease.beat(resources={"cpu_s": 1.5}).status is Status.RUNNING
    assert store.get_run(run_id).resources == {"cpu_s": 1.5}


def test_tick_beats_when_due_and_reports_a_cancel_request(store: RunStore) -> None:
    run_id = running(store)
    lease = Lease(store, run_id, heartbeat_s=0.0, cancel_check_s=0.0)
    assert lease.tick() is False
    first = store.get_run(run_id).heartbeat
    assert first is not None
    store.update_status(run_id, Status.CANCELING, "asked by a user")
    assert lease.tick(now=time.monotonic() + 1) is True
    assert store.get_run(run_id).heartbeat >= first  # type: ignore[operator]


def test_tick_does_nothing_before_anything_is_due(store: RunStore) -> None:
    run_id = running(store)
    lease = Lease(store, run_id, heartbeat_s=None, cancel_check_s=None)
    store.update_status(run_id, Status.CANCELING)
    assert lease.tick() is False
    assert store.get_run(run_id).heartbeat is None
    assert lease.next_due() == float("inf")


@pytest.mark.parametrize(
    ("start", "final", "ends", "passes"),
    [
        (Status.RUNNING, Status.SUCCEEDED, Status.SUCCEEDED, []),
        (Status.CREATED, Status.SUCCEEDED, Status.SUCCEEDED, [Status.RUNNING]),
        (Status.LOST, Status.FAILED, Status.FAILED, [Status.RUNNING]),
        (Status.CANCELING, Status.SUCCEEDED, Status.CANCELED, []),
        (Status.CANCELING, Status.FAILED, Status.CANCELED, []),
        (Status.RUNNING, Status.CANCELED, Status.CANCELED, [Status.CANCELING]),
    ],
)
def test_end_takes_legal_steps_and_a_cancel_request_wins(
    store: RunStore, start: Status, final: Status, ends: Status, passes: list[Status]
) -> None:
    run = store.create_run(make_run())
    for hop in {Status.CREATED: [], Status.RUNNING: [Status.RUNNING],
                Status.LOST: [Status.RUNNING, Status.LOST],
                Status.CANCELING: [Status.RUNNING, Status.CANCELING]}[start]:
        store.update_status(run.id, hop)
    ended = Lease(store, run.id, heartbeat_s=None).end(final, "the reason",
                                                      resources={"peak_rss_bytes": 7})
    assert ended.status is ends
    assert ended.resources == {"peak_rss_bytes": 7}
    if ends is final:
        assert ended.status_reason == "the reason"


def test_end_leaves_a_run_someone_else_ended_as_it_is(store: RunStore) -> None:
    run_id = running(store)
    store.update_status(run_id, Status.FAILED, "killed by an operator")
    ended = Lease(store, run_id, heartbeat_s=None).end(Status.SUCCEEDED)
    assert ended.status is Status.FAILED
    assert ended.status_reason == "killed by an operator"


def test_a_lease_for_another_owner_records_that_owner(store: RunStore) -> None:
    run_id = running(store)
    other = Owner(host="elsewhere", pid=4242, started=1.0)
    assert Lease(store, run_id, heartbeat_s=None, owner=other).take().owner == other
