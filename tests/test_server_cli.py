"""``runyard server`` and ``runyard server token …`` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.core import tokens
from runyard.model import run_to_dict
from runyard.stores import open_store
from runyard.testing.factories import make_run
from server_helpers import API, runyard_command, server_process, token, wait_healthy

TOKEN = re.compile(r"ry_[A-Za-z0-9_-]{43}")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/store/runyard.db"


def runyard(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(runyard_command(*args), capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert done.stdout == ""
    return lines[0]


# -- tokens --------------------------------------------------------------------------------
def test_token_create_prints_the_token_once_and_keeps_only_its_hash(url: str) -> None:
    done = runyard("--store", url, "server", "token", "create", "--name", "ci")
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    assert TOKEN.fullmatch(text) and done.stdout.count("\n") == 1
    assert "shown only now" in done.stderr and text not in done.stderr
    store = open_store(url)
    (record,) = store.list_tokens()
    assert (record.name, record.read_only, record.revoked) == ("ci", False, None)
    assert text not in json.dumps(record.__dict__)
    readonly = runyard("server", "token", "create", "--name", "viewer", "--read-only",
                       "--store", url)
    assert readonly.returncode == 0 and "read-only" in readonly.stderr
    viewer = store.find_token(tokens.digest(readonly.stdout.strip()))
    assert viewer is not None and viewer.read_only


def test_token_list_shows_names_and_rights_never_tokens(url: str) -> None:
    text = token(open_store(url), "alpha")
    token(open_store(url), "beta", read_only=True)
    table = runyard("--store", url, "server", "token", "list")
    assert table.returncode == 0
    rows = [line.split() for line in table.stdout.strip().splitlines()]
    assert rows[0][:2] == ["name", "access"]
    assert [r[:2] for r in rows[1:]] == [["alpha", "read-write"], ["beta", "read-only"]]
    listed = json.loads(runyard("--store", url, "server", "token", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["alpha", "beta"]
    assert set(listed[0]) == {"name", "read_only", "created", "revoked"}
    assert text not in table.stdout


def test_token_revoke_marks_it_and_it_stops_working(url: str) -> None:
    text = token(open_store(url), "temp")
    with server_process(url) as running, running.client(text) as client:
        assert client.get("/runs").status_code == 200
        done = runyard("--store", url, "server", "token", "revoke", "temp")
        assert done.returncode == 0 and "revoked token 'temp'" in done.stderr
        assert client.get("/runs").status_code == 401
    (listed,) = json.loads(runyard("--store", url, "server", "token", "list", "--json").stdout)
    assert listed["revoked"] is not None


@pytest.mark.parametrize("args, code, text", [
    (["token", "revoke", "nobody"], 3, "no token named 'nobody'"),
    (["token", "create", "--name", "bad name"], 2, "invalid token name"),
    (["token", "create"], 2, "--name"),
    (["--port", "http"], 2, "not a whole number"),
    (["--port", "70000"], 2, "out of range"),
    (["--workers", "0"], 2, "out of range"),
])
def test_bad_input_is_one_line_and_an_exit_code(url: str, args: list[str], code: int,
                                                text: str) -> None:
    assert text in one_error_line(runyard("--store", url, "server", *args), code)


def test_a_taken_name_is_refused(url: str) -> None:
    token(open_store(url), "dup")
    line = one_error_line(runyard("--store", url, "server", "token", "create", "--name",
                                  "dup"), 4)
    assert "already exists" in line


def test_several_workers_on_a_memory_store_are_refused() -> None:
    line = one_error_line(runyard("--store", "memory://x", "server", "--workers", "2"), 2)
    assert "memory://" in line and "--workers 1" in line


def test_a_port_in_use_is_refused_with_one_line(url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        line = one_error_line(runyard("--store", url, "server", "--port", port), 2)
    assert "cannot listen on 127.0.0.1:" in line


# -- serving -------------------------------------------------------------------------------
def started(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(runyard_command("--store", url, "server", "--port", "0", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def process(url: str) -> Iterator[subprocess.Popen[str]]:
    running = started(url)
    yield running
    if running.poll() is None:
        running.kill()
    running.wait(30)


def test_the_server_prints_its_url_and_how_to_make_a_token(
        url: str, process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None and process.stderr is not None
    base = process.stdout.readline().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    wait_healthy(base)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    err = process.stderr.read()
    assert "runyard server token create --name NAME" in err and f"{base}/api/v1" in err
    assert "server stopped" in err


def test_sigterm_lets_a_request_in_flight_finish(url: str,
                                                 process: subprocess.Popen[str]) -> None:
    text = token(open_store(url))
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    wait_healthy(base)
    run = make_run()
    body = json.dumps(run_to_dict(run)).encode()
    half_sent, signaled = threading.Event(), threading.Event()

    def slowly() -> Iterator[bytes]:
        yield body[:10]
        half_sent.set()
        signaled.wait(30)
        yield body[10:]

    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{base}{API}/runs", content=slowly(), timeout=60, headers={
            "Authorization": f"Bearer {text}", "Content-Type": "application/json"})))
    sender.start()
    assert half_sent.wait(30)
    time.sleep(0.3)  # (the server has the first bytes of the request)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # (and has the signal)
    signaled.set()
    sender.join(60)
    assert answers and answers[0].status_code == 201, answers
    assert process.wait(60) == 0
    assert open_store(url).get_run(run.id) == run


def test_several_workers_serve_one_store_and_stop_together(url: str) -> None:
    text = token(open_store(url))
    with server_process(url, workers=2) as running:
        made = []
        for _ in range(10):
            with running.client(text) as client:  # a new connection each
                run = make_run()
                assert client.post("/runs", json=run_to_dict(run)).status_code == 201
                made.append(run.id)
        with running.client(text) as client:
            assert client.get("/runs/count").json() == {"count": 10}
        assert running.stop() == 0
    assert sorted(r.id for r in open_store(url).list_runs()) == sorted(made)


def test_token_commands_do_not_import_the_server(url: str) -> None:
    code = ("import sys; from runyard.cli.main import main; "
            f"code = main(['--store', {url!r}, 'server', 'token', 'list']); "
            "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'runyard.server') "
            "if m in sys.modules]; print(code, heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr
