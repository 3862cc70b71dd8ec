"""The run list's folder tree and server-side sort over HTTP (``GET /folders``, ``GET /runs``
with ``sort``), each through a live uvicorn on 127.0.0.1 over a real store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from runyard.model import Status
from runyard.testing.factories import make_run
from server_helpers import Served, token
from test_server_runs import api, error_of, posted, server

__all__ = ["api", "server"]  # (the fixtures, shared with the runs routes' tests)


def one_line_error(answer: httpx.Response) -> str:
    return error_of(answer, 400, "ValidationError")


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


# -- sort ------------------------------------------------------------------------------------
def test_runs_sorted_by_a_parameter_page_by_next_offset_to_the_last(
        api: httpx.Client) -> None:
    made = [posted(api, parameters={"lr": value})["id"]
            for value in [0.3, "x", 0.1, None, 2, 0.1]]
    posted(api)  # (no lr: last)
    expected = [made[2], made[5], made[0], made[4], made[1], made[3]]
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = api.get("/runs", params={"sort": "param:lr", "order": "oldest", "limit": 2,
                                        "offset": offset}).json()
        assert page["next_cursor"] is None
        seen += [run["id"] for run in page["runs"]]
        offset, pages = page["next_offset"], pages + 1
    assert seen[:6] == expected and len(seen) == 7 and pages == 4
    newest = api.get("/runs", params={"sort": "param:lr"}).json()
    assert [run["id"] for run in newest["runs"]][:6] == expected[::-1]
    assert newest["next_offset"] is None  # (not a full page)


def test_the_created_sort_answers_both_a_cursor_and_an_offset(api: httpx.Client) -> None:
    made = [posted(api)["id"] for _ in range(3)]
    page = api.get("/runs", params={"limit": 2, "offset": 0}).json()
    assert [run["id"] for run in page["runs"]] == made[:0:-1]
    assert page["next_cursor"] == made[1] and page["next_offset"] == 2
    assert api.get("/runs", params={"limit": 2, "sort": "created"}).json() == page
    rest = api.get("/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [run["id"] for run in rest["runs"]] == [made[0]]
    assert rest["next_cursor"] is None and rest["next_offset"] is None


@pytest.mark.parametrize("sort", ["bogus", "param:", "duration ", "created;drop"])
def test_an_unknown_sort_is_refused_in_one_line(api: httpx.Client, sort: str) -> None:
    assert "param:KEY" in one_line_error(api.get("/runs", params={"sort": sort}))


def test_a_cursor_with_another_sort_is_refused_in_one_line(api: httpx.Client) -> None:
    run = posted(api)
    detail = one_line_error(api.get("/runs", params={"sort": "name", "cursor": run["id"]}))
    assert "offset" in detail
    assert api.get("/runs", params={"sort": "x" * 257}).status_code == 422


def test_the_http_store_pages_a_long_sorted_list_by_next_offset(
        server: Served, api: httpx.Client, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """More runs than one request asks for (``http.PAGE``): every one, once, in order."""
    from runyard.stores import open_store
    from runyard.stores.http import PAGE

    count = PAGE + 150
    for i in range(count):
        server.store.create_run(make_run(name=f"r{(i * 7919) % count:05d}"))
    monkeypatch.setenv("RUNYARD_TOKEN", token(server.store))
    monkeypatch.setenv("RUNYARD_SPOOL", str(tmp_path / "spool"))
    remote = open_store(server.base)
    try:
        names = [r.name for r in remote.list_runs(order_by="name", newest_first=False)]
        assert names == [f"r{i:05d}" for i in range(count)]
        cut = remote.list_runs(order_by="name", newest_first=False, limit=PAGE + 10, offset=5)
        assert [r.name for r in cut] == names[5:PAGE + 15]
    finally:
        remote.close()
