"""Codespecs and buffers through a live ``runyard server``: records, and buffer data streamed
in (claimed, chunked, finished) and out (in order, following a buffer still being written)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from live_servers import GROUP, LiveServer

pytestmark = pytest.mark.xdist_group(GROUP)

MB = 1 << 20
SPEC = {"name": "hello", "buffers": {"inputs": [], "outputs": ["output"]},
        "command": ["bash", "-c", "echo hi > $OUTPUT_PIPE"]}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as made:
        yield made


def eventually(read: Any, wanted: Any, limit: float = 30.0) -> Any:
    deadline = time.monotonic() + limit
    value = read()
    while not wanted(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


# -- codespecs --------------------------------------------------------------------------------
def test_codespec_versions_are_added_listed_and_read(client: httpx.Client) -> None:
    first = client.post("/codespecs", json={"name": "hello", "digest": "d1", "spec": SPEC})
    assert first.status_code == 200 and first.json()["added"] is True
    assert first.json()["codespec"]["version"] == 1
    same = client.post("/codespecs", json={"name": "hello", "digest": "d1", "spec": SPEC})
    assert same.json()["added"] is False and same.json()["codespec"]["version"] == 1
    changed = {**SPEC, "command": ["true"]}
    second = client.post("/codespecs", json={"name": "hello", "digest": "d2", "spec": changed,
                                             "created": 1700000000.0})
    assert second.json()["codespec"] == {"name": "hello", "version": 2, "created": 1700000000.0,
                                         "digest": "d2", "spec": changed}
    client.post("/codespecs", json={"name": "other", "digest": "x", "spec": SPEC})
    latest = client.get("/codespecs").json()["codespecs"]
    assert [(c["name"], c["version"]) for c in latest] == [("hello", 2), ("other", 1)]
    versions = client.get("/codespecs", params={"name": "hello"}).json()["codespecs"]
    assert [c["version"] for c in versions] == [1, 2]
    assert client.get("/codespecs/hello").json()["version"] == 2
    assert client.get("/codespecs/hello", params={"version": 1}).json()["spec"] == SPEC


def test_unknown_codespecs_are_404_and_bad_names_400(client: httpx.Client) -> None:
    client.post("/codespecs", json={"name": "known", "digest": "d", "spec": SPEC})
    for path, params in (("/codespecs/nothing", {}), ("/codespecs/known", {"version": 7})):
        answer = client.get(path, params=params)
        assert answer.status_code == 404 and answer.json()["type"] == "CodespecNotFound"
    bad = client.post("/codespecs", json={"name": "../etc", "digest": "d", "spec": SPEC})
    assert bad.status_code == 400 and bad.json()["type"] == "ValidationError"
    gap = client.post("/codespecs", json={"name": "known", "digest": "e", "spec": SPEC,
                                          "number": 5})
    assert gap.status_code == 409


# -- buffer records ---------------------------------------------------------------------------
def test_buffers_are_created_listed_claimed_chunked_and_finished(client: httpx.Client) -> None:
    made = client.post("/buffers", json={"tags": {"team": "a"}})
    assert made.status_code == 201 and made.json()["state"] == "created"
    buffer_id = made.json()["id"]
    client.post("/buffers", json={"tags": {"team": "b"}})
    tagged = client.get("/buffers", params={"tag": "team=a"}).json()["buffers"]
    assert [b["id"] for b in tagged] == [buffer_id]
    assert len(client.get("/buffers", params={"limit": 1}).json()["buffers"]) == 1
    owner = {"host": "elsewhere", "pid": 4242, "started": 1700000000.0}
    claimed = client.post(f"/buffers/{buffer_id}/claim", json={"owner": owner})
    assert claimed.json()["state"] == "writing" and claimed.json()["owner"] == owner
    assert client.post(f"/buffers/{buffer_id}/claim", json={}).status_code == 409
    moved = {**owner, "pid": 4343}
    assert client.put(f"/buffers/{buffer_id}/owner", json={"owner": moved}).status_code == 204
    chunk = {"part": 0, "seq": 0, "digest": "a" * 64, "size": 10}
    assert client.post(f"/buffers/{buffer_id}/chunks", json=chunk).status_code == 204
    twice = client.post(f"/buffers/{buffer_id}/chunks", json=chunk)  # (a retried request)
    assert twice.status_code == 409 and twice.json()["type"] == "ConflictError"
    end = {"part": 0, "seq": 1, "digest": None, "size": 0}
    assert client.post(f"/buffers/{buffer_id}/chunks", json=end).status_code == 204
    assert client.get(f"/buffers/{buffer_id}/chunks").json()["chunks"] == [chunk, end]
    assert client.get(f"/buffers/{buffer_id}/chunks", params={"seq": 1}).json() == {
        "chunks": [end]}
    assert client.post(f"/buffers/{buffer_id}/finish", json={"complete": True}).json() == {
        "finished": True}
    assert client.post(f"/buffers/{buffer_id}/finish", json={"complete": False}).json() == {
        "finished": False}
    done = client.get(f"/buffers/{buffer_id}").json()
    assert (done["state"], done["size"], done["owner"]) == ("complete", 10, moved)


def test_buffer_ids_are_checked_and_unknown_ones_404(client: httpx.Client) -> None:
    given = client.post("/buffers", json={"id": "my-buffer-1"})
    assert given.status_code == 201 and given.json()["id"] == "my-buffer-1"
    assert client.post("/buffers", json={"id": "my-buffer-1"}).status_code == 409
    assert client.post("/buffers", json={"id": "../../x"}).status_code == 400
    for answer in (client.get("/buffers/nope"), client.get("/buffers/nope/data"),
                   client.put("/buffers/nope/data", content=b"x"),
                   client.post("/buffers/nope/finish", json={"complete": True})):
        assert answer.status_code == 404 and answer.json()["type"] == "BufferNotFound"


# -- buffer data ------------------------------------------------------------------------------
def test_buffer_data_is_written_once_and_read_back_in_order(client: httpx.Client) -> None:
    buffer_id = client.post("/buffers", json={}).json()["id"]
    assert client.get(f"/buffers/{buffer_id}/data").status_code == 409  # nothing written yet
    data = os.urandom(9 * MB + 5)  # more than one chunk
    written = client.put(f"/buffers/{buffer_id}/data", content=iter([data[:MB], data[MB:]]))
    assert written.status_code == 201
    assert (written.json()["state"], written.json()["size"]) == ("complete", len(data))
    assert client.get(f"/buffers/{buffer_id}/data").content == data
    again = client.put(f"/buffers/{buffer_id}/data", content=b"more")
    assert again.status_code == 409 and "written once" in again.json()["detail"]
    assert client.get(f"/buffers/{buffer_id}/data").content == data


@pytest.fixture(params=["sqlite", "postgres"])
def either(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of the SQLite server or of the PostgreSQL one (four worker processes)."""
    server: LiveServer = request.getfixturevalue(f"live_{request.param}")
    server.wipe()
    with server.client() as made:
        yield made


def test_follow_waits_for_a_buffer_being_written_and_ends_with_it(either: httpx.Client
                                                                   ) -> None:
    client = either
    buffer_id = client.post("/buffers", json={}).json()["id"]
    data = os.urandom(3 * MB)
    go_on = threading.Event()

    def body() -> Iterator[bytes]:
        yield data[:MB]
        go_on.wait(60)
        yield data[MB:]

    writer = threading.Thread(target=lambda: client.put(f"/buffers/{buffer_id}/data",
                                                        content=body()))
    writer.start()
    state = eventually(lambda: client.get(f"/buffers/{buffer_id}").json()["state"],
                       lambda s: s == "writing")
    assert state == "writing"
    assert client.get(f"/buffers/{buffer_id}/data").status_code == 409  # not without follow
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(client.get(
        f"/buffers/{buffer_id}/data", params={"follow": 1}, timeout=60).content))
    reader.start()
    go_on.set()
    writer.join(60)
    reader.join(60)
    assert got == [data]


def test_a_writer_that_goes_away_midway_leaves_the_buffer_incomplete(
        live_server: LiveServer, client: httpx.Client) -> None:
    buffer_id = client.post("/buffers", json={}).json()["id"]
    sock = socket.create_connection(("127.0.0.1", live_server.port))
    sock.sendall((f"PUT /api/v1/buffers/{buffer_id}/data HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {live_server.token}\r\nContent-Length: 1000000\r\n"
                  "\r\n").encode() + b"x" * 1000)
    eventually(lambda: client.get(f"/buffers/{buffer_id}").json()["state"],
               lambda s: s == "writing")
    sock.close()
    done = eventually(lambda: client.get(f"/buffers/{buffer_id}").json(),
                      lambda b: b["state"] == "incomplete")
    assert done["state"] == "incomplete" and "went away" in done["reason"]
    refused = client.get(f"/buffers/{buffer_id}/data")
    assert refused.status_code == 409 and "incomplete" in refused.json()["detail"]
    assert client.get(f"/buffers/{buffer_id}/data", params={"incomplete": 1}).status_code == 200


def test_a_followed_buffer_that_ends_incomplete_cuts_the_answer_short(
        client: httpx.Client) -> None:
    buffer_id = client.post("/buffers", json={}).json()["id"]
    client.post(f"/buffers/{buffer_id}/claim", json={})
    failures: list[BaseException] = []

    def follow() -> None:
        try:
            client.get(f"/buffers/{buffer_id}/data", params={"follow": 1}, timeout=60)
        except httpx.HTTPError as exc:
            failures.append(exc)

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.3)  # (lets the reader start following; the test holds either way)
    client.post(f"/buffers/{buffer_id}/finish", json={"complete": False, "reason": "boom"})
    reader.join(60)
    assert len(failures) == 1


def test_a_read_only_token_reads_buffers_but_cannot_write_them(live_server: LiveServer,
                                                                client: httpx.Client) -> None:
    buffer_id = client.post("/buffers", json={}).json()["id"]
    client.put(f"/buffers/{buffer_id}/data", content=b"readable")
    with live_server.client(live_server.read_token) as reader:
        assert reader.get(f"/buffers/{buffer_id}/data").content == b"readable"
        assert reader.post("/buffers", json={}).status_code == 403
        assert reader.post("/codespecs", json={"name": "x", "digest": "d",
                                               "spec": SPEC}).status_code == 403
        fresh = client.post("/buffers", json={}).json()["id"]
        assert reader.put(f"/buffers/{fresh}/data", content=b"no").status_code == 403


def test_many_followers_of_an_unfinished_buffer_leave_the_server_answering(
        live_server: LiveServer, client: httpx.Client) -> None:
    buffer_id = client.post("/buffers", json={}).json()["id"]
    client.post(f"/buffers/{buffer_id}/claim", json={})
    followers = 50  # more than the server's worker threads (40)
    limits = httpx.Limits(max_connections=followers + 5)
    with live_server.client(limits=limits, timeout=60) as many, contextlib.ExitStack() as held:
        streams = [held.enter_context(many.stream("GET", f"/buffers/{buffer_id}/data",
                                                  params={"follow": 1}))
                   for _ in range(followers)]
        assert all(s.status_code == 200 for s in streams)
        assert client.get("/codespecs", timeout=20).status_code == 200
        client.post(f"/buffers/{buffer_id}/finish", json={"complete": True})
        assert all(s.read() == b"" for s in streams)
