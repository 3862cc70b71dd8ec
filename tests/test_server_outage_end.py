"""A run closed while its server is away ends right once the server is back.

A tracked ``Run`` on ``http://`` (in a process of its own, as a user's script runs) logs values,
its ``runyard server`` (SQLite) is killed with SIGKILL, and the script closes the run: the end
cannot reach the server, so it is spooled behind the run's data and ``close()`` returns. Once
the server is back, the next store opened for it (or ``runyard sync`` from another process)
sends the spool, and the run ends with its status, its end time and every value. A resent end
that had already applied counts once; a run the liveness sweep marked ``lost`` meanwhile still
ends as its owner said, and one asked to cancel ends ``canceled``; an end the server refuses
is kept under ``rejected/``. The stores are read directly, not through the server under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_servers import LiveServer, launch
from runyard.core.liveness import sweep
from runyard.errors import RunNotFound
from runyard.model import RunRecord, Status
from runyard.stores import open_store

BEFORE, AFTER = 100, 50  # values logged before the server is killed, and while it is away

SCRIPT = """
import sys
from runyard import Run

run = Run(sys.argv[1], heartbeat_interval=None, resources_interval=None, capture_code=False)
run.init(name="closed-while-away")
for i in range({before}):
    run.log_metrics({{"x": float(i)}}, step=i)
assert run.flush(60)
print(run.id, flush=True)
sys.stdin.readline()  # the server is killed meanwhile
for i in range({before}, {before} + int(sys.argv[2])):
    run.log_metrics({{"x": float(i)}}, step=i)
run.close(sys.argv[3])
print("closed", flush=True)
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))  # the clients' outbox
    started = launch(f"sqlite://{tmp_path}/store/runyard.db", tmp_path / "server")
    monkeypatch.setenv("RUNYARD_TOKEN", started.token)
    yield started
    started.stop()


def _close_while_away(server: LiveServer, tmp_path: Path, after: int = 0,
                      status: str = "succeeded") -> tuple[str, str]:
    """A script's run, logged, then closed (after ``after`` more values) with its server
    killed; the run's id and what the script wrote on stderr. The script has exited."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(before=BEFORE))
    env = {**os.environ, "RUNYARD_HTTP_PATIENCE": "1", "RUNYARD_SPOOL_DRAIN": "1"}
    proc = subprocess.Popen([sys.executable, str(script), server.url, str(after), status], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    run_id = proc.stdout.readline().strip()
    server.kill()
    out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == "closed"  # close() returned
    assert run_id, err
    return run_id, err


def _entries(folder: Path) -> list[dict[str, str]]:
    """The heads of the spooled entries in ``folder``'s owner folders, in sending order."""
    found = sorted(folder.glob("*/*/*.batch"))
    return [json.loads(p.read_bytes().partition(b"\n")[0]) for p in found]


def _resend_by_a_new_store(server: LiveServer) -> None:
    from runyard.stores.http import HttpStore

    store = HttpStore(server.url)  # adopts what the script's process left
    try:
        assert store.flush(60)
    finally:
        store.close()


def _stored(server: LiveServer, run_id: str) -> tuple[RunRecord, list[float]]:
    store = open_store(server.store_url)
    try:
        return store.get_run(run_id), list(store.read_metric_series(run_id, "x").values)
    finally:
        store.close()


def _spool(server: LiveServer) -> Path:
    return Path(os.environ["RUNYARD_SPOOL"])


def test_a_run_closed_while_its_server_is_away_ends_once_it_is_back(
        server: LiveServer, tmp_path: Path) -> None:
    run_id, err = _close_while_away(server, tmp_path, after=AFTER)
    assert "end (succeeded) is spooled" in err
    heads = _entries(_spool(server))
    assert heads[-1] == {"run": run_id, "key": heads[-1]["key"], "op": "end"}
    assert len(heads) > 1 and all("op" not in h for h in heads[:-1])  # data first
    assert _stored(server, run_id)[0].status is Status.RUNNING
    restarted = time.time()
    server.start()
    _resend_by_a_new_store(server)
    run, values = _stored(server, run_id)
    assert run.status is Status.SUCCEEDED and run.status_reason is None
    assert run.ended is not None and run.ended < restarted  # when it was closed
    assert values == [float(i) for i in range(BEFORE + AFTER)]
    assert not list(_spool(server).rglob("*.batch"))  # all sent, none refused


def test_a_resent_end_that_had_already_applied_counts_once(
        server: LiveServer, tmp_path: Path) -> None:
    run_id, _ = _close_while_away(server, tmp_path)
    store = open_store(server.store_url)  # the end's first try landed, its answer did not
    try:
        first = store.update_status(run_id, Status.SUCCEEDED, expect=Status.RUNNING)
    finally:
        store.close()
    server.start()
    _resend_by_a_new_store(server)
    run, values = _stored(server, run_id)
    assert run.status is Status.SUCCEEDED and run.ended == first.ended
    assert len(values) == BEFORE
    assert not list(_spool(server).rglob("*.batch"))  # settled, not refused


def test_runyard_sync_sends_the_end_of_a_run_marked_lost_meanwhile(
        server: LiveServer, tmp_path: Path) -> None:
    run_id, _ = _close_while_away(server, tmp_path, after=AFTER)
    store = open_store(server.store_url)  # a reader sees the script's process gone
    try:
        assert sweep(store) == 1 and store.get_run(run_id).status is Status.LOST
    finally:
        store.close()
    restarted = time.time()
    server.start()
    done = subprocess.run([sys.executable, "-m", "runyard", "sync", "--to", server.url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run, values = _stored(server, run_id)
    assert run.status is Status.SUCCEEDED and run.status_reason is None
    assert run.ended is not None and run.ended < restarted
    assert values == [float(i) for i in range(BEFORE + AFTER)]
    assert not list(_spool(server).rglob("*.batch"))


def test_an_end_the_server_refuses_is_kept_in_rejected(
        server: LiveServer, tmp_path: Path) -> None:
    run_id, _ = _close_while_away(server, tmp_path)
    store = open_store(server.store_url)  # someone deletes the run meanwhile
    try:
        store.delete_run(run_id)
    finally:
        store.close()
    server.start()
    _resend_by_a_new_store(server)
    rejected = sorted((_spool(server)).glob("*/rejected/*.batch"))
    heads = [json.loads(p.read_bytes().partition(b"\n")[0]) for p in rejected]
    assert [h["op"] for h in heads] == ["end"] and heads[0]["run"] == run_id
    with pytest.raises(RunNotFound):
        _stored(server, run_id)


def test_a_run_asked_to_cancel_meanwhile_ends_canceled(
        server: LiveServer, tmp_path: Path) -> None:
    run_id, _ = _close_while_away(server, tmp_path)
    store = open_store(server.store_url)  # a cancel asked for while the end waited
    try:
        store.update_status(run_id, Status.CANCELING, "asked", expect=Status.RUNNING)
    finally:
        store.close()
    server.start()
    _resend_by_a_new_store(server)
    run, values = _stored(server, run_id)
    assert run.status is Status.CANCELED and run.status_reason == "canceled by request"
    assert len(values) == BEFORE
    assert not list(_spool(server).rglob("*.batch"))


def test_a_run_closed_as_canceled_while_its_server_is_away_ends_canceled(
        server: LiveServer, tmp_path: Path) -> None:
    """As on SIGTERM: ``close("canceled")`` of a running run (which goes there through
    ``canceling``) is spooled too, and lands by legal steps."""
    run_id, err = _close_while_away(server, tmp_path, after=AFTER, status="canceled")
    assert "end (canceled) is spooled" in err
    server.start()
    _resend_by_a_new_store(server)
    run, values = _stored(server, run_id)
    assert run.status is Status.CANCELED
    assert values == [float(i) for i in range(BEFORE + AFTER)]
