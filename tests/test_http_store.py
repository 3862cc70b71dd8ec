"""The ``http(s)://`` store against a live server on 127.0.0.1 (a thread serving ``create_app``).

Round trips, the server's errors as runyard's classes, retries across a server restart on the
same port, the on-disk spool (appends made while the server is down arrive once each, in
order), the saved credentials, the tracking client over http, and store copies both ways.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from http_helpers import ThreadServer
from runyard.errors import (
    ConfigError,
    IllegalTransition,
    IntegrityError,
    NameTaken,
    RunNotFound,
    StepNotFound,
    ValidationError,
)
from runyard.model import Artifact, Event, LogLine, Metric, Stage, Status, Step
from runyard.model.registry import Buffer, Chunk
from runyard.stores import open_store, redact_url
from runyard.testing.factories import make_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's folders (spool, cache, config) in ``tmp_path``; no token in the env."""
    monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNYARD_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("RUNYARD_TOKEN", raising=False)
    monkeypatch.delenv("RUNYARD_BLOBS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadServer]:
    live = ThreadServer(home / "server").start()
    monkeypatch.setenv("RUNYARD_TOKEN", live.token)
    try:
        yield live
    finally:
        live.stop()


def test_runs_steps_streams_and_catalog_round_trip(server: ThreadServer) -> None:
    store = open_store(server.url)
    run = store.create_run(make_run(name="round-trip", tags=frozenset({"a"})))
    assert store.get_run(run.id) == run == store.find_run("round-trip")
    assert store.update_status(run.id, Status.RUNNING).status is Status.RUNNING
    assert store.add_tags(run.id, ["b"]).tags == {"a", "b"}
    assert store.merge_metadata(run.id, {"lr": 0.1}).metadata == {"lr": 0.1}
    store.upsert_step(run.id, Step(name="s1", created=1.0))
    assert [s.name for s in store.get_steps(run.id)] == ["s1"]
    store.append_metrics(run.id, [Metric("loss", float("nan"), 0, 1.0),
                                  Metric("loss", 2.0, 1, 2.0)])
    store.append_metric_columns(run.id, ["acc"], [float("inf")], [None], [3.0])
    store.append_events(run.id, [Event(1.0, "hello", "info")])
    store.append_logs(run.id, [LogLine(1.0, "out", "stdout", "s1")])
    assert repr(store.read_metrics(run.id)) == repr([
        Metric("loss", float("nan"), 0, 1.0), Metric("loss", 2.0, 1, 2.0),
        Metric("acc", float("inf"), None, 3.0)])
    assert store.read_events(run.id) == [Event(1.0, "hello", "info")]
    assert store.read_logs(run.id, step="s1") == [LogLine(1.0, "out", "stdout", "s1")]
    # what the client sent is what the server's own store holds
    assert repr(server.context.store.read_metrics(run.id)) == repr(store.read_metrics(run.id))
    artifact = Artifact("out.txt", "a" * 64, 3, Stage.PUT, 4.0)
    store.add_artifact(run.id, artifact)
    assert store.list_artifacts(run.id) == [artifact]
    assert [r.id for r in store.list_runs()] == [run.id] and store.count_runs() == 1
    store.delete_run(run.id)
    assert store.list_runs() == []


def test_listing_pages_through_more_runs_than_one_request_returns(server: ThreadServer) -> None:
    from runyard.stores import http

    store = open_store(server.url)
    made = [store.create_run(make_run()) for _ in range(7)]
    old, http.PAGE = http.PAGE, 3
    try:
        assert [r.id for r in store.list_runs(newest_first=False)] == [r.id for r in made]
        assert [r.id for r in store.list_runs(limit=5, offset=1)] == \
            [r.id for r in reversed(made)][1:6]
    finally:
        http.PAGE = old


def test_the_servers_errors_are_raised_as_runyards_own(server: ThreadServer) -> None:
    store = open_store(server.url)
    run = store.create_run(make_run(name="taken-name"))
    with pytest.raises(RunNotFound):
        store.get_run("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(NameTaken, match="taken-name"):
        store.create_run(make_run(name="taken-name"))
    with pytest.raises(StepNotFound):
        store.get_step(run.id, "nothing")
    store.update_status(run.id, Status.RUNNING)
    store.update_status(run.id, Status.SUCCEEDED)
    with pytest.raises(IllegalTransition, match="cannot go from succeeded"):
        store.update_status(run.id, Status.RUNNING)
    with pytest.raises(ValidationError, match="non-numeric"):
        store.append_metric_columns(run.id, ["x"], ["high"], [0], [1.0])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="token"):
        store.add_token(None)  # type: ignore[arg-type]


def test_a_bad_or_read_only_token_is_refused_with_one_line(
        server: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard.stores.http import HttpStore

    with pytest.raises(ConfigError, match="unknown token"):
        HttpStore(server.url, token="ry_wrong").list_runs()
    reader = HttpStore(server.url, token=server.reader)
    assert reader.list_runs() == []
    with pytest.raises(ConfigError, match="read-only"):
        reader.create_run(make_run())
    monkeypatch.delenv("RUNYARD_TOKEN")
    with pytest.raises(ConfigError, match="runyard login"):
        HttpStore(server.url)


def test_a_token_never_shows_in_the_store_url(server: ThreadServer) -> None:
    from runyard.stores.http import HttpStore

    with_token = f"http://{server.token}@127.0.0.1:{server.port}"
    store = HttpStore(with_token, token=None)
    assert server.token not in store.url and store.list_runs() == []
    assert server.token not in redact_url(with_token)
    assert "secret" not in redact_url("https://h:1/api?token=secret")


def test_a_request_made_while_the_server_restarts_is_answered_once_it_is_back(
        server: ThreadServer) -> None:
    store = open_store(server.url)
    run = store.create_run(make_run())
    server.stop()
    later = threading.Timer(0.5, server.start)
    later.start()
    try:
        assert store.get_run(run.id) == run  # retried with backoff until the server is up
        store.merge_metadata(run.id, {"after": "restart"})
    finally:
        later.join()
    assert server.context.store.get_run(run.id).metadata == {"after": "restart"}


def test_appends_made_while_the_server_is_down_arrive_once_each_in_order(
        server: ThreadServer, home: Path) -> None:
    store = open_store(server.url)
    run = store.create_run(make_run())
    store.append_metric_columns(run.id, ["m"], [0.0], [0], [1.0])
    server.stop()
    for step in range(1, 6):
        store.append_metric_columns(run.id, ["m"], [float(step)], [step], [1.0 + step])
        store.append_events(run.id, [Event(float(step), f"e{step}", "info")])
    assert len(list((home / "spool").rglob("*.batch"))) == 10
    server.start()
    store.append_metric_columns(run.id, ["m"], [6.0], [6], [7.0])  # behind the spooled ones
    assert store.flush(30)  # type: ignore[attr-defined]
    held = server.context.store
    assert [m.step for m in held.read_metrics(run.id)] == list(range(7))
    assert [e.message for e in held.read_events(run.id)] == [f"e{i}" for i in range(1, 6)]
    assert not list((home / "spool").rglob("*.batch"))


def test_a_spool_left_on_disk_is_resent_by_runyard_sync(
        server: ThreadServer, home: Path) -> None:
    from runyard.stores.http import HttpStore

    store = HttpStore(server.url)
    run = store.create_run(make_run())
    server.stop()
    for step in range(4):
        store.append_metric_columns(run.id, ["m"], [float(step)], [step], [1.0])
    store.close(drain=0.2)  # the server is away: the batches stay on disk
    assert len(list((home / "spool").rglob("*.batch"))) == 4
    server.start()
    done = subprocess.run([sys.executable, "-m", "runyard", "sync"], capture_output=True,
                          text=True, env={**os.environ}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resent 4 spooled batches" in done.stderr
    assert [m.step for m in server.context.store.read_metrics(run.id)] == [0, 1, 2, 3]
    again = subprocess.run([sys.executable, "-m", "runyard", "sync"], capture_output=True,
                           text=True, env={**os.environ}, timeout=120)
    assert again.returncode == 0 and "resent" not in again.stderr
    assert len(server.context.store.read_metrics(run.id)) == 4


def test_the_next_store_for_the_server_resends_what_a_gone_one_left(
        server: ThreadServer, home: Path) -> None:
    from runyard.stores.http import HttpStore

    first = HttpStore(server.url)
    run = first.create_run(make_run())
    server.stop()
    first.append_logs(run.id, [LogLine(1.0, "kept", "stdout", None)])
    first.close(drain=0.1)
    server.start()
    second = HttpStore(server.url)
    second.append_logs(run.id, [LogLine(2.0, "new", "stdout", None)])  # after the adopted one
    assert second.flush(30)
    assert [x.text for x in server.context.store.read_logs(run.id)] == ["kept", "new"]


def test_login_saves_the_token_for_the_user_alone_and_the_env_wins(
        server: ThreadServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_TOKEN")
    env = {k: v for k, v in os.environ.items() if k != "RUNYARD_TOKEN"}
    bad = subprocess.run([sys.executable, "-m", "runyard", "login", server.url],
                         input="ry_not-a-token\n", capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode != 0 and "unknown token" in bad.stderr
    assert not (home / "config" / "credentials.json").exists()
    done = subprocess.run([sys.executable, "-m", "runyard", "login", server.url],
                          input=server.token + "\n", capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    saved = home / "config" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert server.token in saved.read_text() and server.token not in done.stderr
    assert open_store(server.url).list_runs() == []  # the saved token
    monkeypatch.setenv("RUNYARD_TOKEN", "ry_from-the-environment")
    with pytest.raises(ConfigError, match="unknown token"):
        open_store(server.url).list_runs()  # RUNYARD_TOKEN comes first (looked up anew)


def test_a_tracked_run_logs_metrics_and_files_to_the_server(
        server: ThreadServer, home: Path) -> None:
    from runyard import Run

    data = home / "weights.bin"
    data.write_bytes(os.urandom(100_000))
    with Run(store=server.url) as run:
        run.init(name="tracked-over-http")
        for step in range(1000):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run.save_file(data)
        run_id = run.id
    held = server.context.store
    assert held.get_run(run_id).status is Status.SUCCEEDED
    assert [m.step for m in held.read_metrics(run_id, "loss")] == list(range(1000))
    (artifact,) = held.list_artifacts(run_id)
    assert server.context.blobs.read_bytes(artifact.hash) == data.read_bytes()


def test_a_blob_read_through_the_store_is_fetched_and_checked(
        server: ThreadServer, home: Path) -> None:
    from runyard.core.context import open_context

    held = server.context.blobs.put_bytes(b"on the server")
    blobs = open_context(server.url).blobs
    assert type(blobs).__name__ == "RemoteBlobStore"
    assert blobs.exists(held.digest) and blobs.read_bytes(held.digest) == b"on the server"
    corrupt = server.context.blobs.put_bytes(b"will rot")
    path = server.context.blobs.path(corrupt.digest)
    path.chmod(0o644)
    path.write_bytes(b"has rotted")
    with pytest.raises(IntegrityError):
        blobs.read_bytes(corrupt.digest)
    assert not blobs.path(corrupt.digest).exists()  # nothing unchecked kept in the cache


def test_store_copy_goes_both_ways_between_sqlite_and_a_server(
        server: ThreadServer, home: Path) -> None:
    from runyard import Run
    from runyard.core.copy import copy_store_urls

    local = f"sqlite://{home / 'local' / 'runyard.db'}"
    (home / "local").mkdir()
    note = home / "note.txt"
    note.write_text("kept with the run")
    with Run(store=local) as run:
        run.init(name="made-locally")
        run.log_metrics({"x": 1.0}, step=0)
        run.save_file(note)
    report = copy_store_urls(local, server.url)
    assert report.copied == 1 and report.blobs_copied == 1
    (artifact,) = server.context.store.list_artifacts(run.id)
    assert server.context.blobs.read_bytes(artifact.hash) == b"kept with the run"
    back = f"sqlite://{home / 'back' / 'runyard.db'}"
    (home / "back").mkdir()
    assert copy_store_urls(server.url, back).copied == 1
    there = open_store(back)
    assert there.read_metrics(run.id) == [Metric("x", 1.0, 0, there.read_metrics(run.id)[0].time)]
    from runyard.core.context import open_context

    assert open_context(back).blobs.read_bytes(artifact.hash) == b"kept with the run"


def test_a_remote_configuration_records_runs_on_the_server(
        server: ThreadServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from runyard import RuntimeConfiguration

    config = RuntimeConfiguration.remote(server.url, server.token)
    assert config.runtime == "in_process" and config.to_dict(redact=True)["token"] == "***"
    monkeypatch.delenv("RUNYARD_TOKEN")
    assert config.store_url == server.url
    from wf_defs import chain

    run = chain(3).run(config)  # recorded on the server, with the configuration's token
    assert run.get_results(wait=True) == 0 + 1 + 2
    held = server.context.store.get_run(run.run_id)
    assert held.status is Status.SUCCEEDED and held.config["runtime"]["token"] == "***"
    ray = RuntimeConfiguration.remote("ray://head:10001", "t")
    assert ray.runtime == "ray" and ray.options["address"] == "ray://head:10001"


def test_runyard_login_never_takes_the_token_as_an_argument() -> None:
    from click.testing import CliRunner

    from runyard.cli.main import cli

    result = CliRunner().invoke(cli, ["login", "http://127.0.0.1:1", "ry_secret"])
    assert result.exit_code == 2 and "unexpected extra argument" in result.output


def test_writes_whose_answer_was_lost_are_resent_without_doing_them_twice(
        server: ThreadServer) -> None:
    from http_helpers import LosingProxy
    from runyard.stores.http import HttpStore

    proxy = LosingProxy(server.port).start()
    store, held = HttpStore(proxy.url), server.context.store
    try:
        run = make_run(name="said-twice")
        proxy.lose = 1
        assert store.create_run(run) == run  # resent: RunExists for the same run is done
        proxy.lose = 1
        store.append_metric_columns(run.id, ["m"], [1.0], [0], [1.0])  # resent, same key
        proxy.lose = 1
        store.append_events(run.id, [Event(1.0, "once", "info")])
        assert len(held.read_metrics(run.id)) == 1 and len(held.read_events(run.id)) == 1
        proxy.lose = 1
        assert store.update_status(run.id, Status.RUNNING).status is Status.RUNNING
        proxy.lose = 1
        assert store.rename_run(run.id, "said-once").name == "said-once"
        proxy.lose = 1
        store.delete_run(run.id)
        assert held.list_runs() == []
        buffer = Buffer(id="buf-1", created=1.0)
        proxy.lose = 1
        assert store.create_buffer(buffer) == buffer
        proxy.lose = 1
        assert store.claim_buffer("buf-1", None, parts=1).state == "writing"
        proxy.lose = 1
        store.add_buffer_chunk("buf-1", Chunk(0, 0, "b" * 64, 10))
        assert held.get_buffer("buf-1").size == 10  # counted once
        proxy.lose = 1
        assert store.finish_buffer("buf-1", True)  # finished by the try whose answer was lost
        assert not store.finish_buffer("buf-1", True)  # (but not twice)
        with pytest.raises(NameTaken):  # a real conflict is still one
            other = store.create_run(make_run(name="first"))
            store.create_run(make_run(name=other.name))
    finally:
        store.close()
        proxy.stop()


def test_a_forked_child_spools_apart_from_its_parent(server: ThreadServer, home: Path) -> None:
    from runyard.stores.http import HttpStore

    store = HttpStore(server.url)
    run = store.create_run(make_run())
    server.stop()
    store.append_logs(run.id, [LogLine(1.0, "parent-1", "stdout", None)])
    pid = os.fork()
    if pid == 0:  # the child: its batch goes to a folder of its own, left for another store
        try:
            store.append_logs(run.id, [LogLine(2.0, "child", "stdout", None)])
            store.close(drain=0)
        finally:
            os._exit(0)
    assert wait_child(pid, 60), "the forked child did not finish"
    store.append_logs(run.id, [LogLine(3.0, "parent-2", "stdout", None)])
    assert len(list((home / "spool").rglob("*.batch"))) == 3  # none written over another
    server.start()
    assert store.flush(30)
    assert HttpStore(server.url).flush(30)  # adopts what the child left
    texts = [x.text for x in server.context.store.read_logs(run.id)]
    assert sorted(texts) == ["child", "parent-1", "parent-2"]
    assert texts.index("parent-1") < texts.index("parent-2")


def wait_child(pid: int, timeout: float) -> bool:
    """Whether the child ``pid`` ended within ``timeout`` seconds (else it is killed)."""
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def test_a_big_upload_broken_halfway_resumes_where_the_server_stands(
        server: ThreadServer, home: Path) -> None:
    from http_helpers import LosingProxy
    from runyard.core.context import open_context

    proxy = LosingProxy(server.port).start()
    try:
        big = home / "big.bin"
        big.write_bytes(os.urandom(12 << 20))
        blobs = open_context(proxy.url).blobs
        proxy.cut_after = 9 << 20  # the first try breaks three quarters in
        ref = blobs.put_file(big)
        assert server.context.blobs.read_bytes(ref.digest) == big.read_bytes()
        assert proxy.sent < (9 << 20) + (12 << 20)  # not the whole file again after the cut
    finally:
        proxy.stop()


@pytest.mark.parametrize("ref", ["", ".", "..", "a/b", "../runs", "x" * 300, "a b"])
def test_a_ref_no_run_can_have_is_not_found_and_reaches_no_other_route(
        server: ThreadServer, ref: str) -> None:
    from runyard.errors import BufferNotFound

    store = open_store(server.url)
    store.create_run(make_run())  # (so that a listing route answering would show)
    for read in (store.get_run, store.get_run_by_name, store.find_run, store.get_steps,
                 store.list_artifacts, store.read_events):
        with pytest.raises(RunNotFound):
            read(ref)
    assert store.get_codespec(ref) is None
    with pytest.raises(BufferNotFound):
        store.get_buffer(ref)
