"""Bad input over HTTP gets a 4xx with a one-line message, never a 5xx.

Malformed JSON, wrong types, oversize bodies, unknown ids, illegal status transitions and path
traversal in artifact names and blob digests, sent to a live ``runyard server`` (SQLite,
``tests/live_servers.py``) through real sockets. Every answer is the API's error shape:
``{"detail": "<one line>", "type": "<RunyardError class name>"}``. Oversize bodies are sent
over a raw socket, since an HTTP client would not send a false ``Content-Length``.
"""

from __future__ import annotations

import hashlib
import select
import socket
from typing import Any

import httpx
import pytest

from live_servers import GROUP, LiveServer
from runyard.model import new_id, run_to_dict
from runyard.testing import make_run

pytestmark = pytest.mark.xdist_group(GROUP)

DIGEST = "0" * 64
MISSING_RUN = new_id()  # well formed, never created
COLUMNS = {"names": ["m"], "values": [1.0], "steps": [0], "times": [1.0]}


def assert_refused(response: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of ``statuses`` when given) with a one-line ``detail`` and a ``type``."""
    what = f"{response.request.method} {response.request.url}: {response.status_code} " \
           f"{response.text[:300]}"
    assert 400 <= response.status_code < 500, what
    if statuses:
        assert response.status_code in statuses, what
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), what
    assert "\n" not in body["detail"], what
    assert isinstance(body.get("type"), str) and body["type"], what
    return dict(body)


@pytest.fixture
def api(live_server: LiveServer) -> Any:
    with live_server.client() as client:
        yield client


@pytest.fixture
def run_id(api: Any) -> str:
    response = api.post("/runs", json=run_to_dict(make_run()))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- malformed JSON ------------------------------------------------------------------------
WRITES = [
    ("POST", "/runs"), ("PATCH", "/runs/{id}"), ("POST", "/runs/{id}/status"),
    ("POST", "/runs/{id}/tags"), ("POST", "/runs/{id}/metadata"),
    ("POST", "/runs/{id}/parameters"), ("POST", "/runs/{id}/rename"),
    ("PUT", "/runs/{id}/steps"), ("PUT", "/runs/{id}/steps/one"),
    ("POST", "/runs/{id}/steps/attempt"), ("POST", "/runs/{id}/batch"),
    ("POST", "/runs/{id}/metrics"), ("POST", "/runs/{id}/events"), ("POST", "/runs/{id}/logs"),
    ("POST", "/runs/{id}/streams/metrics/missing"), ("POST", "/runs/{id}/artifacts"),
    ("POST", "/blobs/missing"), ("POST", "/codespecs"), ("POST", "/buffers"),
    ("POST", "/runs/command"), ("POST", "/runs/workflow"),
]
MALFORMED = [b'{"broken', b"", b"[1, 2", b"\xff\xfe not utf-8", b"{'single': 'quotes'}",
             b"NaN", b"[" * 100_000 + b"]" * 100_000]


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_malformed_json_is_refused_with_one_line(api: Any, run_id: str, method: str,
                                                  path: str) -> None:
    for body in MALFORMED:
        response = api.request(method, path.format(id=run_id), content=body, headers={
            "Content-Type": "application/json", "Idempotency-Key": "k1"})
        assert_refused(response)


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_the_token_is_checked_before_the_body_is_read(live_server: LiveServer, run_id: str,
                                                      method: str, path: str) -> None:
    """No token: 401; a read-only token: 403, whatever the body (it is never parsed)."""
    target = live_server.url + "/api/v1" + path.format(id=run_id)
    for token, status in ((None, 401), (live_server.read_token, 403)):
        headers = {"Content-Type": "application/json", "Idempotency-Key": "k1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for body in (b'{"broken', b"[]"):
            response = httpx.request(method, target, content=body, headers=headers)
            assert_refused(response, status)


# -- wrong types -----------------------------------------------------------------------------
WRONG_TYPES: list[tuple[str, str, Any]] = [
    ("POST", "/runs", []),
    ("POST", "/runs", {"id": 5, "name": "x"}),
    ("POST", "/runs", {**run_to_dict(make_run()), "tags": "not-a-list"}),
    ("POST", "/runs", {**run_to_dict(make_run()), "status": "bogus"}),
    ("POST", "/runs", {**run_to_dict(make_run()), "name": "../escape"}),
    ("PATCH", "/runs/{id}", {"id": "someone-else"}),
    ("PATCH", "/runs/{id}", {"folder": 7}),
    ("POST", "/runs/{id}/status", {"status": "bogus"}),
    ("POST", "/runs/{id}/status", {"status": ["running"]}),
    ("POST", "/runs/{id}/tags", {"add": "not-a-list"}),
    ("POST", "/runs/{id}/tags", {"add": [""]}),
    ("POST", "/runs/{id}/metadata", {"data": [1, 2]}),
    ("POST", "/runs/{id}/parameters", {"params": "x"}),
    ("POST", "/runs/{id}/rename", {"name": "../x"}),
    ("POST", "/runs/{id}/rename", {"name": None}),
    ("PUT", "/runs/{id}/steps/one", {"name": 5}),
    ("POST", "/runs/{id}/metrics", {**COLUMNS, "values": ["lots"]}),
    ("POST", "/runs/{id}/metrics", {**COLUMNS, "values": [1.0, 2.0]}),
    ("POST", "/runs/{id}/metrics", {**COLUMNS, "steps": [2**70]}),
    ("POST", "/runs/{id}/metrics", {**COLUMNS, "names": ["bad\nname"]}),
    ("POST", "/runs/{id}/metrics", {**COLUMNS, "times": ["yesterday"]}),
    ("POST", "/runs/{id}/metrics", {"names": "m"}),
    ("POST", "/runs/{id}/events", {"events": [{"time": "noon", "message": 1}]}),
    ("POST", "/runs/{id}/events", {"events": "x"}),
    ("POST", "/runs/{id}/logs", {"lines": [{"time": 1.0, "text": None}]}),
    ("POST", "/runs/{id}/streams/metrics/missing", {"start": -1, "items": []}),
    ("POST", "/runs/{id}/streams/metrics/missing", {"start": "zero", "items": []}),
    ("POST", "/runs/{id}/streams/bogus/missing", {"start": 0, "items": []}),
    ("POST", "/runs/{id}/artifacts", {"artifacts": [{"name": "a"}]}),
    ("POST", "/blobs/missing", {"digests": "x"}),
    ("POST", "/blobs/missing", {"digests": ["not-a-digest"]}),
    ("POST", "/codespecs", {"name": "../x", "digest": DIGEST, "spec": {}, "created": 1.0}),
    ("GET", "/runs?limit=abc", None),
    ("GET", "/runs?limit=100000", None),
    ("GET", "/runs?limit=-1", None),
    ("GET", "/runs?order=sideways", None),
    ("GET", "/runs?status=bogus", None),
    ("GET", "/runs?created_since=tomorrow", None),
    ("GET", "/runs/{id}/metrics/downsample?name=m&buckets=0", None),
    ("GET", "/runs/{id}/metrics/downsample?name=m&buckets=10001", None),
    ("GET", "/runs/{id}/metrics/downsample?name=m&x=sideways", None),
    ("GET", "/runs/{id}/metrics/downsample", None),
    ("GET", "/runs/{id}/metrics?step_min=0", None),
    ("GET", "/runs/{id}/streams/metrics?start=-1", None),
    ("GET", "/runs/{id}/streams/bogus?start=0", None),
    ("GET", "/runs/{id}/events?tail=lots", None),
    ("GET", "/watch/runs?status=bogus", None),  # refused before any event is streamed
    ("GET", "/watch/runs?created_since=noon", None),
    ("GET", "/runs/{id}/watch?metrics=maybe", None),
    ("GET", "/buffers/b/data?follow=maybe", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRONG_TYPES,
                         ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(WRONG_TYPES)])
def test_wrong_types_are_refused_with_one_line(api: Any, run_id: str, method: str, path: str,
                                               body: Any) -> None:
    kwargs = {} if body is None else {"json": body}
    assert_refused(api.request(method, path.format(id=run_id), **kwargs), 400, 404, 422)


def test_a_batch_needs_a_well_formed_idempotency_key(api: Any, run_id: str) -> None:
    body = {"metrics": COLUMNS, "events": [], "logs": []}
    assert_refused(api.post(f"/runs/{run_id}/batch", json=body), 400, 422)
    for key in (b"a b", b"x" * 129, b"../k", "ключ".encode(), b""):
        response = api.post(f"/runs/{run_id}/batch", json=body, headers={"Idempotency-Key": key})
        assert_refused(response, 400, 422)
    assert api.get(f"/runs/{run_id}/metrics").json()["values"] == []


def test_one_bad_value_refuses_the_whole_batch(api: Any, run_id: str) -> None:
    columns = {"names": ["m", "m"], "values": [1.0, "lots"], "steps": [0, 1], "times": [1.0, 2.0]}
    response = api.post(f"/runs/{run_id}/batch", json={"metrics": columns},
                        headers={"Idempotency-Key": "k-bad"})
    assert_refused(response, 400, 422)
    assert api.get(f"/runs/{run_id}/metrics").json()["values"] == []


# -- oversize bodies -------------------------------------------------------------------------
def _head(server: LiveServer, path: str, extra: str) -> bytes:
    return (f"POST /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
            f"Idempotency-Key: big-1\r\n{extra}\r\n").encode()


def _exchange(server: LiveServer, head: bytes, chunks: Any = ()) -> bytes:
    """Send ``head`` and then ``chunks`` until the server answers; the answer's bytes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # it answered already
                sock.sendall(chunk)
        except OSError:
            pass  # it stopped reading: its answer should be waiting
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_a_body_declared_too_large_is_refused_before_it_is_read(live_server: LiveServer,
                                                                  run_id: str) -> None:
    for path in ("/runs", f"/runs/{run_id}/batch", f"/runs/{run_id}/metrics"):
        head = _head(live_server, path, f"Content-Length: {2**40}\r\n")
        assert _status(_exchange(live_server, head)) == 413


def test_a_chunked_body_too_large_is_refused_while_it_is_read(live_server: LiveServer,
                                                                run_id: str) -> None:
    piece = b" " * (1 << 20)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    head = _head(live_server, f"/runs/{run_id}/batch", "Transfer-Encoding: chunked\r\n")
    answer = _exchange(live_server, head, (chunk for _ in range(2048)))  # up to 2 GiB
    assert _status(answer) == 413
    with live_server.client() as api:
        assert api.get(f"/runs/{run_id}/metrics").json()["values"] == []


@pytest.mark.parametrize("bad_range", ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=100-200",
                                       "bytes=-0"])
def test_a_bad_range_is_refused_with_one_line(api: Any, bad_range: str) -> None:
    data = b"hello world"
    digest = hashlib.sha256(data).hexdigest()
    assert api.put(f"/blobs/{digest}", content=data).status_code == 201
    assert_refused(api.get(f"/blobs/{digest}", headers={"Range": bad_range}), 400, 416)


@pytest.mark.parametrize("content_range", ["bytes 0-2/x", "bytes 5-2/11", "garbage",
                                           "bytes 0-100/11", "bytes */11"])
def test_a_bad_content_range_is_refused_with_one_line(api: Any, content_range: str) -> None:
    response = api.put(f"/blobs/{'cd' * 32}", content=b"abc",
                       headers={"Content-Range": content_range})
    assert_refused(response, 400, 409, 416)


# -- unknown ids -----------------------------------------------------------------------------
UNKNOWN: list[tuple[str, str, Any]] = [
    ("GET", "/runs/{missing}", None),
    ("GET", "/runs/{missing}?by=id", None),
    ("GET", "/runs/no-such-name?by=name", None),
    ("PATCH", "/runs/{missing}", {"description": "x"}),
    ("POST", "/runs/{missing}/status", {"status": "running"}),
    ("POST", "/runs/{missing}/tags", {"add": ["a"], "remove": []}),
    ("POST", "/runs/{missing}/metadata", {"data": {"a": 1}}),
    ("POST", "/runs/{missing}/parameters", {"params": {"a": 1}}),
    ("POST", "/runs/{missing}/rename", {"name": "new-name"}),
    ("POST", "/runs/{missing}/cancel", None),
    ("DELETE", "/runs/{missing}", None),
    ("GET", "/runs/{missing}/steps", None),
    ("GET", "/runs/{id}/steps/one?name=nope", None),
    ("PUT", "/runs/{missing}/steps/one", {"name": "s", "status": "running", "created": 1.0}),
    ("GET", "/runs/{missing}/metrics", None),
    ("GET", "/runs/{missing}/metrics/summary", None),
    ("GET", "/runs/{missing}/metrics/downsample?name=m", None),
    ("POST", "/runs/{missing}/metrics", COLUMNS),
    ("GET", "/runs/{missing}/events", None),
    ("POST", "/runs/{missing}/events", {"events": [{"time": 1.0, "message": "m"}]}),
    ("GET", "/runs/{missing}/logs", None),
    ("POST", "/runs/{missing}/logs", {"lines": [{"time": 1.0, "text": "t"}]}),
    ("GET", "/runs/{missing}/streams/metrics?start=0", None),
    ("GET", "/runs/{missing}/artifacts", None),
    ("GET", "/runs/{id}/artifacts/content?name=nope", None),
    ("GET", "/runs/{missing}/watch", None),
    ("GET", "/blobs/" + DIGEST, None),
    ("GET", "/codespecs/no-such-spec", None),
    ("GET", "/buffers/no-such-buffer", None),
    ("GET", "/buffers/no-such-buffer/chunks", None),
    ("GET", "/buffers/no-such-buffer/data", None),
    ("POST", "/buffers/no-such-buffer/finish", {"complete": True, "reason": None}),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN,
                         ids=[f"{m} {p}" for m, p, _ in UNKNOWN])
def test_unknown_ids_are_404_with_one_line(api: Any, run_id: str, method: str, path: str,
                                           body: Any) -> None:
    kwargs = {} if body is None else {"json": body}
    target = path.format(missing=MISSING_RUN, id=run_id)
    assert_refused(api.request(method, target, **kwargs), 404)


def test_an_unknown_run_in_a_batch_is_404(api: Any) -> None:
    response = api.post(f"/runs/{MISSING_RUN}/batch", json={"metrics": COLUMNS},
                        headers={"Idempotency-Key": "k-404"})
    assert_refused(response, 404)


def test_an_unknown_blob_is_404_to_head(live_server: LiveServer) -> None:
    with live_server.client() as api:
        assert api.head("/blobs/" + DIGEST).status_code == 404


# -- conflicts: illegal transitions, taken ids and names ----------------------------------
def test_illegal_status_transitions_are_409(api: Any, run_id: str) -> None:
    body = assert_refused(api.post(f"/runs/{run_id}/status", json={"status": "succeeded"}), 409)
    assert body["type"] == "IllegalTransition"
    assert api.post(f"/runs/{run_id}/status", json={"status": "running"}).status_code == 200
    assert api.post(f"/runs/{run_id}/status", json={"status": "succeeded"}).status_code == 200
    for status in ("running", "created", "canceling", "failed"):
        body = assert_refused(api.post(f"/runs/{run_id}/status", json={"status": status}), 409)
        assert body["type"] == "IllegalTransition"
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"


def test_a_status_change_expecting_another_status_is_409(api: Any, run_id: str) -> None:
    response = api.post(f"/runs/{run_id}/status",
                        json={"status": "running", "expect": "pending"})
    assert_refused(response, 409)
    assert api.get(f"/runs/{run_id}").json()["status"] == "created"


def test_a_taken_id_or_name_is_409(api: Any, run_id: str) -> None:
    taken = api.get(f"/runs/{run_id}").json()
    body = assert_refused(api.post("/runs", json=taken), 409)
    assert body["type"] == "RunExists"
    body = assert_refused(api.post("/runs", json=run_to_dict(make_run(name=taken["name"]))), 409)
    assert body["type"] == "NameTaken"


# -- path traversal --------------------------------------------------------------------------
TRAVERSING = ["../../etc/passwd", "/etc/passwd", "a/../../b", "..", "a//b", "a\\..\\b",
              "a\x00b"]


@pytest.mark.parametrize("name", TRAVERSING)
def test_artifact_names_that_traverse_are_refused(api: Any, run_id: str, name: str) -> None:
    artifact = {"name": name, "hash": DIGEST, "size": 1, "stage": "put", "time": 1.0,
                "step": None, "category": None}
    assert_refused(api.post(f"/runs/{run_id}/artifacts", json={"artifacts": [artifact]}))
    assert api.get(f"/runs/{run_id}/artifacts").json()["artifacts"] == []
    response = api.get(f"/runs/{run_id}/artifacts/content", params={"name": name})
    assert_refused(response)
    assert b"root:" not in response.content


@pytest.mark.parametrize("digest", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "not-hex",
                                    DIGEST[:-1] + "G", DIGEST + "0"])
def test_blob_digests_that_are_not_sha256_hex_are_refused(api: Any, digest: str) -> None:
    for method in ("GET", "PUT"):
        response = api.request(method, f"/blobs/{digest}", content=b"x")
        assert_refused(response)
        assert b"root:" not in response.content
