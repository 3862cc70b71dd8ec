"""Blobs and artifacts through a live ``runyard server``: streamed, verified, resumable uploads;
ranged downloads; artifact content by name, with traversal refused."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_servers import GROUP, LiveServer
from runyard.stores import blob_location

pytestmark = pytest.mark.xdist_group(GROUP)

MB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_root(server: LiveServer) -> Path:
    configured = server.env.get("RUNYARD_BLOBS")  # (PostgreSQL keeps no folder of its own)
    return Path(configured) if configured else blob_location(server.store_url)


def temp_files(server: LiveServer) -> list[str]:
    root = blob_root(server)
    return sorted(p.name for p in root.glob(".tmp-*")) if root.is_dir() else []


def eventually(read: Callable[[], Any], wanted: Callable[[Any], bool], limit: float = 30.0
               ) -> Any:
    """``read()`` until ``wanted`` holds of it (or ``limit`` seconds pass); its last value."""
    deadline = time.monotonic() + limit
    value = read()
    while not wanted(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


def raw_put(server: LiveServer, path: str, headers: dict[str, str], first: bytes
            ) -> socket.socket:
    """A PUT whose body is sent only in part (``first``); the socket, to go on or to drop."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    lines = [f"PUT /api/v1{path} HTTP/1.1", "Host: 127.0.0.1",
             f"Authorization: Bearer {server.token}", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    return sock


def status_of(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        got = sock.recv(4096)
        if not got:
            break
        head += got
    return int(head.split(b" ", 2)[1])


def pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as made:
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
def either(request: pytest.FixtureRequest) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """The SQLite server (one worker) or the PostgreSQL one (four worker processes: the
    requests of one test land on different processes), emptied; and a client of it."""
    server: LiveServer = request.getfixturevalue(f"live_{request.param}")
    server.wipe()
    with server.client() as made:
        yield server, made


# -- uploads and downloads --------------------------------------------------------------------
def test_streamed_upload_is_stored_and_downloads_whole_ranged_and_tagged(
        client: httpx.Client) -> None:
    data = os.urandom(3 * MB + 17)
    digest = sha(data)
    put = client.put(f"/blobs/{digest}", content=pieces(data))  # chunked: no length given
    assert put.status_code == 201 and put.json() == {"digest": digest, "size": len(data)}
    head = client.head(f"/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    whole = client.get(f"/blobs/{digest}")
    assert whole.content == data and whole.headers["etag"] == f'"{digest}"'
    part = client.get(f"/blobs/{digest}", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    beyond = client.get(f"/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.json()["type"] == "ValidationError"
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    several = client.get(f"/blobs/{digest}", headers={"Range": "bytes=0-1, 10-11"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges")
    bad = client.get(f"/blobs/{digest}", headers={"Range": "bytes=9-1"})
    assert bad.status_code == 400 and "\n" not in bad.json()["detail"]
    assert client.get(f"/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'}
                      ).status_code == 304
    again = client.put(f"/blobs/{digest}", content=data)  # stored already: nothing to do
    assert again.status_code == 201 and again.json()["size"] == len(data)


def test_upload_that_does_not_hash_to_its_digest_is_refused_and_nothing_is_kept(
        live_server: LiveServer, client: httpx.Client) -> None:
    data = os.urandom(2 * MB)
    claimed = sha(b"something else")
    refused = client.put(f"/blobs/{claimed}", content=pieces(data))
    assert refused.status_code == 422
    assert refused.json()["type"] == "IntegrityError" and "\n" not in refused.json()["detail"]
    assert client.head(f"/blobs/{claimed}").status_code == 404
    assert not (blob_root(live_server) / claimed[:2] / claimed[2:]).exists()
    assert temp_files(live_server) == []


def test_upload_resumes_from_what_the_server_received(
        either: tuple[LiveServer, httpx.Client]) -> None:
    live_server, client = either
    data = os.urandom(MB + 333)
    digest, total = sha(data), len(data)
    first = client.put(f"/blobs/{digest}", content=data[:500_000],
                       headers={"Content-Range": f"bytes 0-499999/{total}"})
    assert first.status_code == 202 and first.json() == {"received": 500_000}
    assert client.get(f"/blobs/{digest}/upload").json() == {"received": 500_000}
    overlap = client.put(f"/blobs/{digest}", content=data[400_000:600_000],
                         headers={"Content-Range": f"bytes 400000-599999/{total}"})
    assert overlap.status_code == 409 and overlap.json()["received"] == 500_000
    middle = client.put(f"/blobs/{digest}", content=data[500_000:900_000],
                        headers={"Content-Range": "bytes 500000-899999/*"})
    assert middle.status_code == 202 and middle.json() == {"received": 900_000}
    last = client.put(f"/blobs/{digest}", content=data[900_000:],
                      headers={"Content-Range": f"bytes 900000-{total - 1}/{total}"})
    assert last.status_code == 201 and last.json() == {"digest": digest, "size": total}
    assert client.get(f"/blobs/{digest}").content == data
    assert client.get(f"/blobs/{digest}/upload").json() == {"received": 0}
    assert temp_files(live_server) == []


def test_resumed_upload_with_wrong_content_is_refused_and_its_partial_file_removed(
        live_server: LiveServer, client: httpx.Client) -> None:
    data = os.urandom(200_000)
    digest = sha(data)
    client.put(f"/blobs/{digest}", content=data[:100_000],
               headers={"Content-Range": "bytes 0-99999/200000"})
    tampered = b"X" + data[100_001:]
    refused = client.put(f"/blobs/{digest}", content=tampered,
                         headers={"Content-Range": "bytes 100000-199999/200000"})
    assert refused.status_code == 422 and refused.json()["type"] == "IntegrityError"
    assert client.head(f"/blobs/{digest}").status_code == 404
    assert client.get(f"/blobs/{digest}/upload").json() == {"received": 0}
    assert temp_files(live_server) == []


def test_a_piece_for_an_upload_never_started_is_409_and_leaves_nothing(
        live_server: LiveServer, client: httpx.Client) -> None:
    digest = sha(b"0123456789")
    answer = client.put(f"/blobs/{digest}", content=b"56789",
                        headers={"Content-Range": "bytes 5-9/10"})
    assert answer.status_code == 409 and answer.json()["received"] == 0
    assert temp_files(live_server) == []


def test_a_piece_longer_than_its_content_range_is_refused_and_not_kept(
        client: httpx.Client) -> None:
    data = os.urandom(1000)
    digest = sha(data)
    refused = client.put(f"/blobs/{digest}", content=data,
                         headers={"Content-Range": "bytes 0-499/1000"})
    assert refused.status_code == 400
    assert client.get(f"/blobs/{digest}/upload").json() == {"received": 0}


def test_an_upload_cut_off_midway_keeps_what_arrived_and_resumes(
        live_server: LiveServer, client: httpx.Client) -> None:
    data = os.urandom(600_000)
    digest, sent = sha(data), 250_000
    sock = raw_put(live_server, f"/blobs/{digest}",
                   {"Content-Length": str(len(data)),
                    "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}, data[:sent])
    eventually(lambda: client.get(f"/blobs/{digest}/upload").json()["received"],
               lambda n: n == sent)
    sock.close()  # the client goes away mid-body

    def held() -> int:  # what the upload holds, once the server has let go of it
        answer = client.put(f"/blobs/{digest}", content=b"",
                            headers={"Content-Range": f"bytes 0-0/{len(data)}"})
        busy = "another upload" in answer.json()["detail"]
        return -1 if busy or answer.status_code != 409 else int(answer.json()["received"])

    assert eventually(held, lambda n: n == sent) == sent
    rest = client.put(f"/blobs/{digest}", content=data[sent:],
                      headers={"Content-Range": f"bytes {sent}-{len(data) - 1}/{len(data)}"})
    assert rest.status_code == 201
    assert client.get(f"/blobs/{digest}").content == data


def test_a_second_uploader_of_the_same_blob_is_refused_while_the_first_writes(
        either: tuple[LiveServer, httpx.Client]) -> None:
    live_server, client = either
    data = os.urandom(400_000)
    digest, half = sha(data), 200_000
    whole = f"bytes 0-{len(data) - 1}/{len(data)}"
    sock = raw_put(live_server, f"/blobs/{digest}",
                   {"Content-Length": str(len(data)), "Content-Range": whole}, data[:half])
    try:
        eventually(lambda: client.get(f"/blobs/{digest}/upload").json()["received"],
                   lambda n: n == half)
        second = client.put(f"/blobs/{digest}", content=os.urandom(len(data)),
                            headers={"Content-Range": whole})
        assert second.status_code == 409 and second.json()["received"] == half
        assert "another upload" in second.json()["detail"]
        sock.sendall(data[half:])
        assert status_of(sock) == 201
    finally:
        sock.close()
    assert client.get(f"/blobs/{digest}").content == data


def test_missing_names_the_digests_the_server_lacks(client: httpx.Client) -> None:
    data = os.urandom(100)
    client.put(f"/blobs/{sha(data)}", content=data)
    unknown = sha(b"never uploaded")
    answer = client.post("/blobs/missing", json={"digests": [sha(data), unknown]})
    assert answer.json() == {"missing": [unknown]}
    assert client.post("/blobs/missing", json={"digests": ["../etc"]}).status_code == 400
    assert client.post("/blobs/missing", json={"digests": [unknown] * 10_001}).status_code == 422


@pytest.mark.parametrize("bad", ["abc", "..%2F..%2Fetc", "g" * 64, "blake3:" + "z" * 64])
def test_a_malformed_digest_is_a_one_line_400(client: httpx.Client, bad: str) -> None:
    for answer in (client.put(f"/blobs/{bad}", content=b"x"), client.get(f"/blobs/{bad}"),
                   client.get(f"/blobs/{bad}/upload")):
        assert answer.status_code in (400, 404)
        assert "\n" not in answer.json()["detail"]


@pytest.mark.parametrize("header", ["bytes 5-2/10", "bytes 0-10/10", "bits 0-1/2", "bytes x"])
def test_a_malformed_content_range_is_400(client: httpx.Client, header: str) -> None:
    answer = client.put(f"/blobs/{sha(b'ab')}", content=b"ab", headers={"Content-Range": header})
    assert answer.status_code == 400 and "Content-Range" in answer.json()["detail"]


def test_blobs_need_a_token_and_a_read_only_token_cannot_upload(live_server: LiveServer
                                                                 ) -> None:
    data = b"guarded"
    with httpx.Client(base_url=live_server.url + "/api/v1") as anonymous:
        assert anonymous.put(f"/blobs/{sha(data)}", content=data).status_code == 401
        assert anonymous.get(f"/blobs/{sha(data)}").status_code == 401
    with live_server.client(live_server.read_token) as reader:
        assert reader.put(f"/blobs/{sha(data)}", content=data).status_code == 403
        assert reader.head(f"/blobs/{sha(data)}").status_code == 404


# -- artifacts --------------------------------------------------------------------------------
def new_run(client: httpx.Client) -> str:
    from runyard.model import RunRecord, new_id, run_to_dict

    run = RunRecord(id=new_id(), name=f"blobs-{new_id()[-8:].lower()}", created=time.time())
    assert client.post("/runs", json=run_to_dict(run)).status_code == 201
    return run.id


def test_artifact_content_is_streamed_by_name_with_ranges(client: httpx.Client) -> None:
    run_id = new_run(client)
    data = b"col\n" + b"1,2\n" * 10_000
    client.put(f"/blobs/{sha(data)}", content=data)
    added = client.post(f"/runs/{run_id}/artifacts", json={"artifacts": [
        {"name": "out/table.csv", "hash": sha(data), "size": len(data)}]})
    assert added.status_code == 204
    listed = client.get(f"/runs/{run_id}/artifacts").json()["artifacts"]
    assert [(a["name"], a["hash"], a["stage"]) for a in listed] == [
        ("out/table.csv", sha(data), "put")]
    got = client.get(f"/runs/{run_id}/artifacts/content", params={"name": "out/table.csv"})
    assert got.content == data and got.headers["content-type"].startswith("text/csv")
    assert got.headers["content-disposition"].startswith("attachment")
    assert 'filename="table.csv"' in got.headers["content-disposition"]
    ranged = client.get(f"/runs/{run_id}/artifacts/content", params={"name": "out/table.csv"},
                        headers={"Range": "bytes=-4"})
    assert ranged.status_code == 206 and ranged.content == data[-4:]
    other = client.get(f"/runs/{run_id}/artifacts/content",
                       params={"name": "out/table.csv", "stage": "get"})
    assert other.status_code == 404


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../etc/passwd", "a\x00b",
                                  "..\\..\\x", "C:/Windows/win.ini"])
def test_artifact_names_with_traversal_are_refused_in_one_line(client: httpx.Client,
                                                               name: str) -> None:
    run_id = new_run(client)
    got = client.get(f"/runs/{run_id}/artifacts/content", params={"name": name})
    assert got.status_code in (400, 404) and "\n" not in got.json()["detail"]
    added = client.post(f"/runs/{run_id}/artifacts", json={"artifacts": [
        {"name": "fine.txt", "hash": sha(b""), "size": 0},
        {"name": name, "hash": sha(b""), "size": 0}]})
    assert added.status_code == 400
    assert client.get(f"/runs/{run_id}/artifacts").json() == {"artifacts": []}  # all or none


def test_an_artifact_whose_hash_is_a_path_is_never_read_from_disk(client: httpx.Client) -> None:
    run_id = new_run(client)
    client.post(f"/runs/{run_id}/artifacts", json={"artifacts": [
        {"name": "sneaky", "hash": "../../../../etc/passwd", "size": 10}]})
    got = client.get(f"/runs/{run_id}/artifacts/content", params={"name": "sneaky"})
    assert got.status_code in (400, 404) and b"root:" not in got.content


def test_artifacts_of_an_unknown_run_are_404(client: httpx.Client) -> None:
    from runyard.model import new_id

    assert client.get(f"/runs/{new_id()}/artifacts").status_code == 404
    assert client.get(f"/runs/{new_id()}/artifacts/content",
                      params={"name": "x"}).status_code == 404


# -- no body limit for streamed uploads ---------------------------------------------------------
@pytest.fixture
def small_limit_server(tmp_path: Path) -> Iterator[str]:
    """A server (uvicorn in a thread, on 127.0.0.1) whose JSON body limit is 64 KB."""
    import uvicorn

    from live_servers import free_port, make_token
    from runyard.core.context import open_context
    from runyard.server.app import create_app

    url = f"sqlite://{tmp_path}/store/runyard.db"
    token = make_token(url, "writer")
    app = create_app(open_context(url), access_log=False, max_body=64 * 1024)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, bool)
    try:
        yield f"http://127.0.0.1:{port}/api/v1|{token}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_streamed_uploads_are_not_held_to_the_json_body_limit(small_limit_server: str) -> None:
    base, token = small_limit_server.split("|")
    data = os.urandom(MB)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.put(f"/blobs/{sha(data)}", content=data).status_code == 201
        huge_json = {"digests": [sha(data)] * 2000}  # ~140 KB of JSON
        assert client.post("/blobs/missing", json=huge_json).status_code == 413
        buffer = client.post("/buffers", json={}).json()["id"]
        assert client.put(f"/buffers/{buffer}/data", content=data).status_code == 201
        assert client.get(f"/buffers/{buffer}/data").content == data


def test_slow_uploads_leave_the_server_answering(live_server: LiveServer,
                                                 client: httpx.Client) -> None:
    uploads = 25  # blobs, and as many buffers: more than the server's worker threads (40)
    socks = []
    try:
        for _ in range(uploads):
            data = os.urandom(1000)
            socks.append(raw_put(live_server, f"/blobs/{sha(data)}",
                                 {"Content-Length": str(len(data))}, data[:10]))
            buffer_id = client.post("/buffers", json={}).json()["id"]
            socks.append(raw_put(live_server, f"/buffers/{buffer_id}/data",
                                 {"Content-Length": "1000"}, b"x" * 10))
        assert client.get("/codespecs", timeout=20).status_code == 200
    finally:
        for sock in socks:
            sock.close()
    assert eventually(lambda: temp_files(live_server), lambda found: found == []) == []


def test_blake3_blobs_upload_whole_and_in_pieces(live_server: LiveServer,
                                                 client: httpx.Client) -> None:
    from runyard.blobs import BLAKE3, hash_bytes

    whole, pieced = os.urandom(300_000), os.urandom(300_000)
    first = hash_bytes(whole, BLAKE3).digest
    assert first.startswith("blake3:")
    assert client.put(f"/blobs/{first}", content=whole).status_code == 201
    second = hash_bytes(pieced, BLAKE3).digest
    for start, end in ((0, 99_999), (100_000, 299_999)):
        answer = client.put(f"/blobs/{second}", content=pieced[start:end + 1],
                            headers={"Content-Range": f"bytes {start}-{end}/300000"})
        assert answer.status_code in (201, 202)
    assert answer.json() == {"digest": second, "size": 300_000}
    assert client.get(f"/blobs/{first}").content == whole
    assert client.get(f"/blobs/{second}").content == pieced
    wrong = hash_bytes(b"other", BLAKE3).digest
    assert client.put(f"/blobs/{wrong}", content=whole).status_code == 422
    assert temp_files(live_server) == []


def test_a_blob_sent_or_asked_about_again_is_renewed_for_garbage_collection(
        live_server: LiveServer, client: httpx.Client) -> None:
    data = os.urandom(1000)
    digest = sha(data)
    client.put(f"/blobs/{digest}", content=data)
    stored = blob_root(live_server) / digest[:2] / digest[2:]
    old = time.time() - 7 * 86400
    os.utime(stored, (old, old))
    assert client.put(f"/blobs/{digest}", content=data).status_code == 201
    assert stored.stat().st_mtime > old + 86400
    os.utime(stored, (old, old))
    assert client.post("/blobs/missing", json={"digests": [digest]}).json() == {"missing": []}
    assert stored.stat().st_mtime > old + 86400
