"""The run list's folder tree and server-side sort over HTTP (``GET /folders``, ``GET /runs``
with ``sort``), each through a live uvicorn on 127.0.0.1 over a real store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.model import Status, run_to_dict
from runyard.testing.factories import make_run
from server_helpers import Served, served, token


@pytest.fixture(params=["memory", "sqlite"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    url = f"memory://{uuid.uuid4().hex}" if request.param == "memory" \
        else f"sqlite://{tmp_path}/store/runyard.db"
    with served(url) as running:
        yield running


@pytest.fixture
def api(server: Served) -> Iterator[httpx.Client]:
    with server.client(token(server.store)) as client:
        yield client


def posted(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = api.post("/runs", json=run_to_dict(make_run(**fields)))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def one_line_error(answer: httpx.Response, status: int = 400) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"detail", "type"}, body
    assert body["detail"] and "\n" not in body["detail"]
    detail: str = body["detail"]
    return detail


# -- folders -------------------------------------------------------------------------------
def test_folders_answers_the_runs_directly_in_each_folder_under_the_list_filters(
        api: httpx.Client, server: Served) -> None:
    assert api.get("/folders").json() == {"folders": {}}
    for folder in ["/", "/a", "/a", "/a/b", "/ab"]:
        posted(api, folder=folder, tags=frozenset({"t"}) if folder == "/a" else frozenset())
    running = posted(api, folder="/a/b/c")
    server.store.update_status(running["id"], Status.RUNNING)
    assert api.get("/folders").json() == {
        "folders": {"/": 1, "/a": 2, "/a/b": 1, "/a/b/c": 1, "/ab": 1}}
    assert api.get("/folders", params={"folder": "/a"}).json() == {
        "folders": {"/a": 2, "/a/b": 1, "/a/b/c": 1}}
    assert api.get("/folders", params={"tag": "t"}).json() == {"folders": {"/a": 2}}
    assert api.get("/folders", params={"status": "running"}).json() == {
        "folders": {"/a/b/c": 1}}
    assert api.get("/folders", params=[("status", "running"), ("status", "created"),
                                       ("folder", "/a/b")]).json() == {
        "folders": {"/a/b": 1, "/a/b/c": 1}}


def test_folders_refuses_a_bad_filter_in_one_line_and_a_missing_token(
        api: httpx.Client, server: Served) -> None:
    assert "status" in one_line_error(api.get("/folders", params={"status": "nope"})).lower()
    one_line_error(api.get("/folders", params={"folder": "no-slash/../x"}))
    with server.client() as anonymous:
        assert anonymous.get("/folders").status_code == 401
