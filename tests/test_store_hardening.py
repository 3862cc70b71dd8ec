"""Stores that fail clearly and never lose or double data: syncing into the spool itself, an
append cut short by a full disk, damaged run logs, a text file as a database, a store another
user may only read, and PostgreSQL's NUL and silent servers.

The command line runs as a real process wherever the error a user sees matters.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard.errors import ValidationError
from runyard.model import Event, LogLine, Metric, RunRecord, Status, new_id
from runyard.stores import open_store
from runyard.tracking.spool import Spool
from together import race

NOBODY = 65534


# -- helpers --------------------------------------------------------------------------------
def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    for word in words:
        assert word in done.stderr


def closed_run(store_url: str, name: str, values: int = 5) -> str:
    store = open_store(store_url)
    run = store.create_run(RunRecord(id=new_id(), name=name))
    store.append_metrics(run.id, [Metric("m", float(i), i, 1.0 + i) for i in range(values)])
    store.append_events(run.id, [Event(1.0, "hello")])
    store.update_status(run.id, Status.RUNNING)
    store.update_status(run.id, Status.SUCCEEDED)
    store.close()
    return run.id


# -- sync: never into the spool itself --------------------------------------------------------
def spool_aliases(root: Path, cwd: Path) -> dict[str, str]:
    runs = root / "runs"
    (cwd / "link").symlink_to(root, target_is_directory=True)
    return {
        "same": f"chunked://{runs}",
        "symlink": f"chunked://{cwd / 'link' / 'runs'}",
        "relative": "chunked://" + os.path.relpath(runs, cwd),
        "dotdot": f"chunked://{runs / '..' / 'runs'}",
        "file-scheme": f"file://{runs}",
        "file-scheme-dotdot": f"file://{root / 'blobs' / '..' / 'runs'}",
        "sqlite-inside": f"sqlite://{cwd / 'link' / 'runs' / 'runyard.db'}",
        "parent-blobs": f"chunked://{root}",  # its blobs would be the spool's blobs folder
    }


def test_sync_refuses_the_spool_itself_by_any_alias(tmp_path: Path) -> None:
    spool = Spool(tmp_path / ".runyard" / "offline")
    run_id = closed_run(spool.url, "offline-run")
    for alias, url in spool_aliases(spool.root, tmp_path).items():
        done = cli("sync", "--to", url, cwd=tmp_path)
        assert_one_line_error(done, "spool itself")
        store = spool.open()
        assert [r.id for r in store.list_runs()] == [run_id], alias
        assert len(store.read_metrics(run_id)) == 5, alias
    done = cli("sync", "--to", f"sqlite://{tmp_path}/team/runyard.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # a real destination still works
    assert spool.open().list_runs() == []


def test_sync_refuses_a_memory_store_whose_runs_would_end_with_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / ".runyard" / "offline")
    run_id = closed_run(spool.url, "offline-run")
    assert_one_line_error(cli("sync", "--to", "memory://team", cwd=tmp_path), "memory store")
    assert [r.id for r in spool.open().list_runs()] == [run_id]


@pytest.mark.parametrize("with_spool", [False, True])
def test_sync_to_a_bogus_url_is_one_clear_line(tmp_path: Path, with_spool: bool) -> None:
    if with_spool:
        closed_run(Spool(tmp_path / ".runyard" / "offline").url, "offline-run")
    assert_one_line_error(cli("sync", "--to", "bogus://", cwd=tmp_path), "unknown store URL")


# -- an append cut short ----------------------------------------------------------------------
FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from runyard.errors import StoreError
    from runyard.model import Event, LogLine, Metric
    from runyard.stores import open_store
    store, run_id, kind = open_store(sys.argv[1]), sys.argv[2], sys.argv[3]
    path = sys.argv[4]
    batch = {"metrics": [Metric("m", float(i), i, 1.0) for i in range(1000)],
             "events": [Event(1.0, f"event {i}") for i in range(1000)],
             "logs": [LogLine(1.0, f"line {i}") for i in range(1000)]}[kind]
    append = getattr(store, "append_" + kind)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    import os
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 2000, hard))
    try:
        append(run_id, batch)
    except StoreError as exc:
        print("failed:", exc, file=sys.stderr)
    else:
        raise SystemExit("the append did not fail")
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again: the caller retries
    append(run_id, batch)
""")


@pytest.mark.parametrize("kind", ["metrics", "events", "logs"])
def test_a_chunked_append_that_fails_half_way_is_not_written_twice(
    tmp_path: Path, kind: str
) -> None:
    url = f"chunked://{tmp_path}/store"
    store = open_store(url)
    run = store.create_run(RunRecord(id=new_id(), name="r"))
    getattr(store, f"append_{kind}")(run.id, {
        "metrics": [Metric("m", -1.0, None, 1.0)] * 10,
        "events": [Event(1.0, "before")] * 10,
        "logs": [LogLine(1.0, "before")] * 10}[kind])
    path = tmp_path / "store" / run.id / f"{kind}.jsonl"
    done = subprocess.run([sys.executable, "-c", FULL_DISK, url, run.id, kind, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "File too large" in done.stderr  # the first try really failed part-way
    rows = getattr(store, f"read_{kind}")(run.id)
    assert len(rows) == 10 + 1000


# -- a new SQLite store opened by several processes at once ----------------------------------
OPENER = textwrap.dedent("""
    import sys
    from runyard.model import Event, RunRecord, new_id
    from runyard.stores import open_store
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(10):  # each a new process's first open, as a command line's
        store = open_store(sys.argv[1])
        run = store.create_run(RunRecord(id=new_id(), name="run-" + new_id().lower()))
        store.append_events(run.id, [Event(1.0, "x" * 100)] * 2000)  # (checkpoints run)
        store.close()
""")


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    for trial in range(3):
        url = f"sqlite://{tmp_path}/new-{trial}/runyard.db"
        race(OPENER, [url], 6, timeout=120)
        assert open_store(url).count_runs() == 60


# -- damaged run logs, text files, read-only stores -------------------------------------------
def damage(kind: str, root: Path, run_id: str) -> Path:
    path = root / f"{run_id}.json" if kind == "file" else root / run_id / "RunLog.json"
    path.write_text("{not json")
    return path


@pytest.mark.parametrize("kind", ["file", "chunked"])
def test_a_damaged_run_log_spares_the_others_and_can_be_deleted(
    kind: str, tmp_path: Path
) -> None:
    url = f"{kind}://{tmp_path}/store"
    ids = [closed_run(url, f"run-{i}") for i in range(3)]
    path = damage(kind, tmp_path / "store", ids[1])
    listed = cli("run", "list", "--store", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "run-0" in listed.stdout and "run-2" in listed.stdout
    assert "run-1" not in listed.stdout
    assert str(path) in listed.stderr  # the warning names the damaged file
    assert_one_line_error(cli("run", "show", ids[1], "--store", url, cwd=tmp_path), str(path))
    deleted = cli("run", "delete", ids[1], "--yes", "--store", url, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert not path.exists()
    listed = cli("run", "list", "--store", url, cwd=tmp_path)
    assert listed.returncode == 0 and listed.stderr == ""
    assert {r.id for r in open_store(url).list_runs()} == {ids[0], ids[2]}


def test_a_text_file_given_as_an_sqlite_store_is_one_clear_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n" * 20)
    done = cli("run", "list", "--store", f"sqlite://{notes}", cwd=tmp_path)
    assert_one_line_error(done, "is not an SQLite database", str(notes))
    assert notes.read_text() == "just some notes\n" * 20


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="runyard-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# Runs the command line as another user: the interpreter starts as root (it lives under
# /root, which the other user cannot reach), runs a warm-up command so every module the
# commands need is loaded, then drops to ``nobody`` for the command itself.
AS_NOBODY = textwrap.dedent("""
    import contextlib, io, os, sys
    from runyard.cli.main import main
    warm = sys.argv[1]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["run", "list", "--store", warm])
        main(["run", "show", "warm", "--store", warm])
        main(["run", "metrics", "warm", "--store", warm])
        main(["run", "rename", "warm", "warmer", "--store", warm])
        main(["run", "rename", "warmer", "warm", "--store", warm])
        main(["run", "delete", "no-such-run", "--yes", "--store", warm])
    import runyard.core.runs  # what a delete loads once its run is found (none is, above)
    os.setgroups([]); os.setgid(NOBODY); os.setuid(NOBODY)
    sys.exit(main(sys.argv[2:]))
""").replace("NOBODY", str(NOBODY))


def as_nobody(warm: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", AS_NOBODY, warm, *args], cwd=cwd,
                          env={**env(), "HOME": str(cwd)}, capture_output=True, text=True,
                          timeout=120)


def url_in(kind: str, folder: Path) -> str:
    return f"sqlite://{folder}/runyard.db" if kind == "sqlite" else f"{kind}://{folder}"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize("kind", ["file", "chunked", "sqlite"])
@pytest.mark.parametrize("owner_open", [False, True], ids=["closed", "owner-open"])
def test_a_store_another_user_owns_can_be_read_but_not_written(
    kind: str, owner_open: bool, shared_tmp: Path
) -> None:
    url, warm = url_in(kind, shared_tmp / "store"), url_in(kind, shared_tmp / "warm")
    closed_run(warm, "warm")
    run_id = closed_run(url, "mine")
    held = open_store(url)  # the owner still writing: SQLite's log and its index are there
    if owner_open:
        held.append_metrics(run_id, [Metric("late", 1.0, 0, 9.0)])
    else:
        held.close()
    for reading in (["run", "list"], ["run", "show", "mine"], ["run", "metrics", "mine"]):
        done = as_nobody(warm, *reading, "--store", url, cwd=shared_tmp)
        assert done.returncode == 0, done.stderr
        assert "mine" in done.stdout or "m," in done.stdout
        if owner_open and reading[1] == "metrics":
            assert "late" in done.stdout  # what the owner wrote last is seen too
    for writing in (["run", "rename", "mine", "theirs"], ["run", "delete", run_id, "--yes"]):
        done = as_nobody(warm, *writing, "--store", url, cwd=shared_tmp)
        assert_one_line_error(done, "read-only")
    assert open_store(url).get_run(run_id).name == "mine"
    held.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
@pytest.mark.parametrize("kind", ["file", "chunked"])
def test_another_user_reads_a_file_store_a_killed_writer_left_to_repair(
    kind: str, shared_tmp: Path
) -> None:
    url, warm = url_in(kind, shared_tmp / "store"), url_in(kind, shared_tmp / "warm")
    closed_run(warm, "warm")
    run_id = closed_run(url, "mine")
    (shared_tmp / "store" / "index.json").unlink()  # the repair needs the lock nobody gets
    (shared_tmp / "store" / ".pending").mkdir(exist_ok=True)
    (shared_tmp / "store" / ".pending" / run_id).touch()
    done = as_nobody(warm, "run", "list", "--store", url, cwd=shared_tmp)
    assert done.returncode == 0, done.stderr
    assert "mine" in done.stdout
    assert not (shared_tmp / "store" / "index.json").exists()  # (repaired for itself only)


# -- PostgreSQL -------------------------------------------------------------------------------
def test_postgres_keeps_nul_in_log_lines_and_events(pg_url: str) -> None:
    store = open_store(pg_url)
    run = store.create_run(RunRecord(id=new_id(), name="nul"))
    lines = [LogLine(1.0, "a\x00b", "stdout", "step"), LogLine(2.0, "\ufdd0marked"),
             LogLine(3.0, "plain", "stderr", "s\x00")]
    events = [Event(1.0, "boom\x00", "warn\x00ing"), Event(2.0, "\ufdd0"), Event(3.0, "ok")]
    store.append_logs(run.id, lines)
    store.append_events(run.id, events)
    assert store.read_logs(run.id) == lines
    assert store.read_logs(run.id, step="s\x00") == [lines[2]]
    assert store.read_logs(run.id, tail=1) == [lines[2]]
    assert store.read_events(run.id) == events
    assert store.append_missing(run.id, "logs", lines + lines[:1], 0) == 1
    assert store.read_logs(run.id) == lines + lines[:1]
    store.close()


def test_postgres_refuses_nul_in_names_and_text_up_front_but_closes_runs(pg_url: str) -> None:
    store = open_store(pg_url)
    with pytest.raises(ValidationError):
        store.create_run(RunRecord(id=new_id(), name="bad\x00name"))
    run = store.create_run(RunRecord(id=new_id(), name="good"))
    with pytest.raises(ValidationError, match="NUL"):
        store.update_run(run.id, description="a\x00b")
    assert store.get_run(run.id).description == run.description
    store.update_status(run.id, Status.RUNNING)
    store.update_status(run.id, Status.FAILED, "the job printed \x00 and died")
    assert store.get_run(run.id).status_reason == "the job printed \ufffd and died"
    store.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_a_silent_postgres_server_is_a_clear_error(silent_server: int, tmp_path: Path) -> None:
    url = f"postgresql://someone@127.0.0.1:{silent_server}/db"
    done = cli("run", "list", "--store", url, cwd=tmp_path)  # (would hang without a timeout)
    assert_one_line_error(done, "cannot connect to the PostgreSQL store", "timeout")


# -- append_missing on every backend ----------------------------------------------------------
def test_append_missing_writes_only_the_rows_a_run_lacks(store_url: str) -> None:
    store = open_store(store_url)
    run = store.create_run(RunRecord(id=new_id(), name="tail"))
    rows: dict[str, list[Any]] = {"metrics": [Metric("m", float(i), i, 1.0 + i) for i in range(8)],
            "events": [Event(1.0 + i, f"e{i}") for i in range(8)],
            "logs": [LogLine(1.0 + i, f"l{i}", "stdout", None) for i in range(8)]}
    for kind, items in rows.items():
        getattr(store, f"append_{kind}")(run.id, items[:5])
        assert store.append_missing(run.id, kind, items[3:], 3) == 3  # rows 3, 4 are there
        assert store.append_missing(run.id, kind, items[3:], 3) == 0
        assert store.append_missing(run.id, kind, items, 0) == 0
        assert getattr(store, f"read_{kind}")(run.id) == items
    with pytest.raises(ValidationError):
        store.append_missing(run.id, "steps", [], 0)
    store.close()
