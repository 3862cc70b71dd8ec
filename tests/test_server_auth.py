"""Tokens on every route of the server, read from its published OpenAPI document.

No token, an unknown, malformed or revoked one: 401; a read-only token: 403 on every write and
let through on every read; the cookie ``/login`` sets works like the header. Only /healthz
and /login answer without a token.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard.core import tokens
from runyard.testing.factories import make_run
from server_helpers import API, Served, served, server_process, token

OPEN = {"/api/v1/healthz", "/api/v1/login"}
READS = {"get", "head"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("auth")
    with served(f"sqlite://{folder}/store/runyard.db") as running:
        yield running


@pytest.fixture(scope="module")
def routes(server: Served) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the schema but the open ones, ids filled in."""
    run = server.store.create_run(make_run())
    schema = httpx.get(f"{server.base}{API}/openapi.json").json()
    found = []
    for path, operations in schema["paths"].items():
        if path in OPEN:
            continue
        concrete = re.sub(r"\{[^}]+\}", lambda m: filled(m.group(0), run.id), path)
        found += [(method, concrete) for method in operations]
    assert len(found) >= 20  # (the runs and steps routes alone are 17)
    return found


def filled(param: str, run_id: str) -> str:
    if "digest" in param:
        return "0" * 64
    if "kind" in param:
        return "metrics"
    return run_id if "id" in param or "ref" in param else "some-name"


def status_of(client: httpx.Client, method: str, path: str) -> int:
    """The status a request gets (a streamed answer is closed once its status is known)."""
    with client.stream(method.upper(), path) as answer:
        return answer.status_code


def unauthorized(answer: httpx.Response) -> bool:
    """A 401 in the error shape (a HEAD answer has the status and header alone)."""
    if answer.request.method != "HEAD" and answer.json()["type"] != "Unauthorized":
        return False
    return answer.status_code == 401 and answer.headers.get("www-authenticate") == "Bearer"


def test_the_schema_lists_every_part_of_the_api(routes: list[tuple[str, str]]) -> None:
    paths = {path for _, path in routes}
    assert any(p.endswith("/steps/attempt") for p in paths)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer ry_" + "A" * 43},  # well formed, unknown
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
    {"Cookie": "runyard_token=ry_" + "B" * 43},
], ids=["none", "unknown", "malformed", "basic", "empty", "unknown-cookie"])
def test_every_route_refuses_a_request_without_a_valid_token(
        server: Served, routes: list[tuple[str, str]], headers: dict[str, str]) -> None:
    with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
        for method, path in routes:
            answer = client.request(method.upper(), path, json={})
            assert unauthorized(answer), (method, path, answer.status_code, answer.text)


def test_every_route_refuses_a_revoked_token(server: Served,
                                             routes: list[tuple[str, str]]) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    text = token(server.store, name)
    with server.client(token_text=text) as client:
        assert client.get("/runs").status_code == 200
        tokens.revoke(server.store, name)
        for method, path in routes:
            answer = client.request(method.upper(), path.removeprefix(API), json={})
            assert unauthorized(answer), (method, path, answer.text)
            assert method == "head" or "revoked" in answer.json()["detail"]


def test_a_read_only_token_reads_every_route_and_writes_none(
        server: Served, routes: list[tuple[str, str]]) -> None:
    with httpx.Client(base_url=server.base, timeout=30, headers={
            "Authorization": f"Bearer {token(server.store, read_only=True)}"}) as client:
        for method, path in routes:
            if method in READS:
                assert status_of(client, method, path) not in (401, 403), (method, path)
            else:
                answer = client.request(method.upper(), path, json={})
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["type"] == "Forbidden"  # (HEAD is a read)


def test_a_read_write_token_passes_the_check_on_every_route(
        server: Served, routes: list[tuple[str, str]]) -> None:
    with httpx.Client(base_url=server.base, timeout=30, headers={
            "Authorization": f"Bearer {token(server.store)}"}) as client:
        for method, path in routes:
            if method in READS:
                assert status_of(client, method, path) not in (401, 403), (method, path)


def test_login_sets_a_cookie_that_works_like_the_header(server: Served) -> None:
    name = f"browser-{uuid.uuid4().hex[:8]}"
    text = token(server.store, name, read_only=True)
    with httpx.Client(base_url=server.base, timeout=30) as browser:
        root = browser.get("/login", params={"token": text}, follow_redirects=False)
        assert root.status_code == 303 and root.headers["location"] == "/"
        answer = browser.get(f"{API}/login", params={"token": text, "next": "/runs?x=1"})
        assert answer.status_code == 303 and answer.headers["location"] == "/runs?x=1"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert browser.get(f"{API}/runs").status_code == 200
        assert browser.post(f"{API}/runs", json={}).status_code == 403
        tokens.revoke(server.store, name)
        assert unauthorized(browser.get(f"{API}/runs"))


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "runs",
                                    "/\\evil.example", "/a\nb"])
def test_login_sends_nowhere_but_this_server(server: Served, target: str) -> None:
    text = token(server.store)
    answer = httpx.get(f"{server.base}{API}/login", params={"token": text, "next": target})
    assert answer.status_code == 400 and answer.json()["type"] == "ValidationError"
    assert "set-cookie" not in answer.headers


def test_login_with_a_bad_token_is_401_and_sets_no_cookie(server: Served) -> None:
    for bad in ["ry_" + "C" * 43, "nonsense", ""]:
        answer = httpx.get(f"{server.base}{API}/login", params={"token": bad})
        assert unauthorized(answer) and "set-cookie" not in answer.headers


def test_healthz_and_the_schema_need_no_token(server: Served) -> None:
    assert httpx.get(f"{server.base}{API}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{server.base}{API}/openapi.json").status_code == 200


def test_the_schema_declares_both_ways_to_send_a_token(server: Served) -> None:
    schema = httpx.get(f"{server.base}{API}/openapi.json").json()
    runs = schema["paths"]["/api/v1/runs"]["get"]
    assert runs["security"] == [{"HTTPBearer": []}, {"APIKeyCookie": []}]
    assert "security" not in schema["paths"]["/api/v1/healthz"]["get"]


def test_the_access_log_names_the_token_and_never_shows_one(
        caplog: pytest.LogCaptureFixture) -> None:
    with served(f"memory://{uuid.uuid4().hex}", access_log=True) as running:
        text = token(running.store, "logged")
        with caplog.at_level(logging.INFO, logger="runyard.server.access"):
            with running.client(text) as client:
                client.get("/runs", params={"status": "running"})
            httpx.get(f"{running.base}{API}/login", params={"token": text, "next": "/"})
            httpx.get(f"{running.base}{API}/runs")
    import json

    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "runyard.server.access"]
    assert text not in caplog.text
    listed = next(e for e in lines if e["path"] == "/api/v1/runs?status=running")
    assert listed["token"] == "logged" and listed["status"] == 200 and listed["method"] == "GET"
    assert listed["bytes"] > 0 and listed["ms"] >= 0
    assert any(e["path"] == "/api/v1/login" and e["status"] == 303 for e in lines)
    assert any(e["path"] == "/api/v1/runs" and e["status"] == 401 and e["token"] is None
               for e in lines)


def test_a_revoked_token_stops_at_once_in_every_worker(tmp_path: Path) -> None:
    from runyard.stores import open_store

    url = f"sqlite://{tmp_path}/store/runyard.db"
    text = token(open_store(url), "shared")
    with server_process(url, workers=3) as running, running.client(text) as client:
        assert all(client.get("/runs/count").status_code == 200 for _ in range(30))
        tokens.revoke(open_store(url), "shared")
        # new connections, so the workers' accept calls spread them
        for _ in range(30):
            with running.client(text) as fresh:
                assert unauthorized(fresh.get("/runs/count"))
        assert unauthorized(client.get("/runs/count"))
