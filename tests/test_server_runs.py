"""The runs and steps routes of the REST server, each through a live uvicorn on 127.0.0.1."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard.core.context import StoreContext
from runyard.model import Attempt, Kind, Owner, Status, Step, new_id, run_to_dict
from runyard.model.codec import step_to_dict
from runyard.processes.owners import this_owner
from runyard.stores import RunStore
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


def error_of(answer: httpx.Response, status: int, type_name: str) -> str:
    """The one-line detail of an error answer, after checking its status and shape."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"detail", "type"} and body["type"] == type_name, body
    assert "\n" not in body["detail"] and body["detail"]
    detail: str = body["detail"]
    return detail


# -- create and get ------------------------------------------------------------------------
def test_a_posted_run_is_stored_as_sent_and_read_back_by_id_name_or_ref(
        api: httpx.Client, server: Served) -> None:
    run = make_run(tags=frozenset({"a", "b"}), metadata={"lr": 0.1}, folder="/x/y",
                   owner=Owner("h", 12, 3.5), code={"commit": "abc"})
    answer = api.post("/runs", json=run_to_dict(run))
    assert answer.status_code == 201
    assert answer.json() == run_to_dict(run)
    assert server.store.get_run(run.id) == run
    for ref, by in [(run.id, "id"), (run.name, "name"), (run.id, "ref"), (run.name, "ref")]:
        assert api.get(f"/runs/{ref}", params={"by": by}).json() == run_to_dict(run)


def test_a_second_run_with_a_taken_id_or_name_is_a_conflict(api: httpx.Client) -> None:
    first = posted(api)
    again = make_run(id=first["id"])
    assert "already exists" in error_of(api.post("/runs", json=run_to_dict(again)), 409,
                                        "RunExists")
    same_name = make_run(name=first["name"])
    error_of(api.post("/runs", json=run_to_dict(same_name)), 409, "NameTaken")


@pytest.mark.parametrize("change, status, kind", [
    ({"id": "../../etc"}, 422, "ValidationError"),  # not 26 characters
    ({"id": "x" * 26}, 400, "ValidationError"),  # 26, but not an id
    ({"name": "bad name/with slash"}, 400, "ValidationError"),
    ({"status": "sleeping"}, 422, "ValidationError"),
    ({"created": "yesterday"}, 422, "ValidationError"),
    ({"tags": "not-a-list"}, 422, "ValidationError"),
])
def test_a_malformed_run_is_refused_with_one_line(api: httpx.Client, change: dict[str, Any],
                                                  status: int, kind: str) -> None:
    body = {**run_to_dict(make_run()), **change}
    error_of(api.post("/runs", json=body), status, kind)


def test_a_run_missing_a_required_field_is_refused(api: httpx.Client) -> None:
    body = run_to_dict(make_run())
    del body["created"]
    assert "created" in error_of(api.post("/runs", json=body), 422, "ValidationError")


def test_an_unknown_run_is_404_by_id_name_or_a_path_like_ref(api: httpx.Client) -> None:
    assert "no run" in error_of(api.get(f"/runs/{new_id()}"), 404, "RunNotFound")
    error_of(api.get("/runs/nobody", params={"by": "name"}), 404, "RunNotFound")
    error_of(api.get("/runs/nobody", params={"by": "id"}), 404, "RunNotFound")
    error_of(api.get("/runs/..%2F..%2Fetc", params={"by": "id"}), 404, "NotFoundError")
    error_of(api.get("/runs/..etc", params={"by": "id"}), 404, "RunNotFound")
    error_of(api.post("/runs/..etc/tags", json={"add": ["a"]}), 404, "RunNotFound")


# -- list and count ------------------------------------------------------------------------
def make_many(store: RunStore) -> list[str]:
    ids = []
    for i in range(7):
        run = make_run(tags=frozenset({"even"} if i % 2 == 0 else {"odd"}),
                       folder="/a/b" if i < 3 else "/c", name=f"item-{i}",
                       kind=Kind.WORKFLOW if i == 6 else Kind.TRACKED, created=1000.0 + i)
        if i in (1, 2):
            run = run.with_status(Status.RUNNING, now=1000.0 + i)
        ids.append(store.create_run(run).id)
    return ids


@pytest.mark.parametrize("params, picked", [
    ({}, range(7)),
    ({"status": "running"}, [1, 2]),
    ({"status": ["running", "created"]}, range(7)),
    ({"tag": "even"}, [0, 2, 4, 6]),
    ({"tag": ["even", "odd"]}, []),
    ({"folder": "/a"}, [0, 1, 2]),
    ({"name": "item-5"}, [5]),
    ({"kind": "workflow"}, [6]),
    ({"created_since": 1002.0, "created_until": 1004.0}, [2, 3]),
])
def test_listing_and_counting_apply_every_filter(api: httpx.Client, server: Served,
                                                 params: dict[str, Any], picked: Any) -> None:
    ids = make_many(server.store)
    wanted = [ids[i] for i in sorted(picked, reverse=True)]
    answer = api.get("/runs", params=params).json()
    assert [r["id"] for r in answer["runs"]] == wanted
    assert answer["next_cursor"] is None
    assert api.get("/runs/count", params=params).json() == {"count": len(wanted)}
    oldest = api.get("/runs", params={**params, "order": "oldest"}).json()["runs"]
    assert [r["id"] for r in oldest] == wanted[::-1]


def test_the_cursor_pages_through_every_run_once_in_order(api: httpx.Client,
                                                          server: Served) -> None:
    ids = make_many(server.store)
    for order, expected in [("newest", ids[::-1]), ("oldest", ids)]:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/runs", params=params).json()
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected


def test_a_cursor_of_a_deleted_run_still_pages_on(api: httpx.Client, server: Served) -> None:
    ids = make_many(server.store)
    first = api.get("/runs", params={"limit": 2}).json()
    server.store.delete_run(first["next_cursor"])
    rest = api.get("/runs", params={"cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in rest["runs"]] == ids[::-1][2:]


@pytest.mark.parametrize("params, status", [
    ({"status": "sleeping"}, 400), ({"kind": "nope"}, 400), ({"folder": "no-slash"}, 400),
    ({"limit": 0}, 422), ({"limit": 1001}, 422), ({"offset": -1}, 422),
    ({"order": "sideways"}, 422), ({"cursor": "x" * 65}, 422),
    ({"created_since": "soon"}, 422), ({"limit": 10**30}, 422),
])
def test_bad_list_queries_are_4xx_with_one_line(api: httpx.Client, params: dict[str, Any],
                                                status: int) -> None:
    error_of(api.get("/runs", params=params), status, "ValidationError")


# -- changes -------------------------------------------------------------------------------
def test_patch_sets_updatable_fields_and_refuses_the_others(api: httpx.Client,
                                                            server: Served) -> None:
    run = posted(api)
    owner = this_owner()
    answer = api.patch(f"/runs/{run['id']}", json={
        "description": "new", "heartbeat": 5.0, "kind": "workflow",
        "owner": {"host": owner.host, "pid": owner.pid, "started": owner.started}})
    assert answer.status_code == 200
    stored = server.store.get_run(run["id"])
    assert (stored.description, stored.heartbeat, stored.kind, stored.owner) == \
        ("new", 5.0, Kind.WORKFLOW, owner)
    assert answer.json() == run_to_dict(stored)
    assert "update_run cannot change" in error_of(
        api.patch(f"/runs/{run['id']}", json={"name": "sneaky"}), 400, "ValidationError")
    for wrong in [{"kind": "alien"}, {"heartbeat": "soon"}, {"owner": {"host": "h"}},
                  {"resources": [1]}]:
        error_of(api.patch(f"/runs/{run['id']}", json=wrong), 422, "ValidationError")
    error_of(api.post(f"/runs/{run['id']}/status", json={
        "status": "running", "fields": {"heartbeat": "soon"}}), 422, "ValidationError")
    assert server.store.get_run(run["id"]) == stored
    error_of(api.patch(f"/runs/{new_id()}", json={"description": "x"}), 404, "RunNotFound")


def test_status_changes_follow_the_transitions(api: httpx.Client, server: Served) -> None:
    run = posted(api)
    path = f"/runs/{run['id']}/status"
    moved = api.post(path, json={"status": "running", "reason": "go", "now": 50.0,
                                 "metadata": {"m": 1}, "internals": {"i": 2},
                                 "fields": {"heartbeat": 51.0}}).json()
    assert (moved["status"], moved["status_reason"], moved["started"]) == ("running", "go", 50.0)
    assert (moved["metadata"], moved["internals"], moved["heartbeat"]) == \
        ({"m": 1}, {"i": 2}, 51.0)
    assert "cannot go from running to created" in error_of(
        api.post(path, json={"status": "created"}), 409, "IllegalTransition")
    error_of(api.post(path, json={"status": "succeeded", "expect": "pending"}), 409,
             "ConflictError")
    assert server.store.get_run(run["id"]).status is Status.RUNNING
    assert api.post(path, json={"status": "succeeded"}).json()["status"] == "succeeded"


def test_tags_metadata_and_parameters_merge(api: httpx.Client, server: Served) -> None:
    run = posted(api, tags=frozenset({"old"}))
    rid = run["id"]
    tagged = api.post(f"/runs/{rid}/tags", json={"add": ["x", "y"], "remove": ["old"]}).json()
    assert tagged["tags"] == ["x", "y"]
    assert api.post(f"/runs/{rid}/tags", json={}).json()["tags"] == ["x", "y"]
    error_of(api.post(f"/runs/{rid}/tags", json={"add": ["bad tag\n"]}), 400,
             "ValidationError")
    api.post(f"/runs/{rid}/metadata", json={"data": {"a": 1}})
    assert api.post(f"/runs/{rid}/metadata", json={"data": {"b": {"c": 2}}}).json()[
        "metadata"] == {"a": 1, "b": {"c": 2}}
    api.post(f"/runs/{rid}/parameters", json={"params": {"lr": 0.1}})
    assert api.post(f"/runs/{rid}/parameters", json={"params": {"bs": 8}}).json()[
        "parameters"] == {"lr": 0.1, "bs": 8}
    stored = server.store.get_run(rid)
    assert stored.tags == {"x", "y"} and stored.parameters == {"lr": 0.1, "bs": 8}


def test_rename_checks_the_name_and_its_uniqueness(api: httpx.Client) -> None:
    first, second = posted(api), posted(api)
    path = f"/runs/{first['id']}/rename"
    assert api.post(path, json={"name": "fresh-name"}).json()["name"] == "fresh-name"
    assert api.get("/runs/fresh-name").json()["id"] == first["id"]
    error_of(api.post(path, json={"name": second["name"]}), 409, "NameTaken")
    error_of(api.post(path, json={"name": "no spaces allowed"}), 400, "ValidationError")


def test_delete_removes_the_run_and_its_log(api: httpx.Client, server: Served) -> None:
    run = posted(api)
    answer = api.delete(f"/runs/{run['id']}")
    assert answer.status_code == 204 and answer.content == b""
    error_of(api.get(f"/runs/{run['id']}"), 404, "RunNotFound")
    error_of(api.delete(f"/runs/{run['id']}"), 404, "RunNotFound")
    assert server.store.list_runs() == []


# -- cancel --------------------------------------------------------------------------------
def test_cancel_follows_the_rules_of_run_cancel(api: httpx.Client, server: Served) -> None:
    store = server.store
    pending = store.create_run(make_run(kind=Kind.COMMAND).with_status(Status.PENDING))
    running = store.create_run(make_run(
        kind=Kind.COMMAND, owner=this_owner(), heartbeat=time.time()).with_status(
        Status.RUNNING))
    assert api.post(f"/runs/{pending.id}/cancel").json()["status"] == "canceled"
    assert api.post(f"/runs/{running.id}/cancel").json()["status"] == "canceling"
    assert "only pending or running" in error_of(
        api.post(f"/runs/{pending.id}/cancel"), 409, "ConflictError")
    tracked = posted(api)
    assert "only command runs" in error_of(api.post(f"/runs/{tracked['id']}/cancel"), 409,
                                           "ConflictError")
    error_of(api.post(f"/runs/{new_id()}/cancel"), 404, "RunNotFound")


def test_a_created_workflow_run_is_canceled(api: httpx.Client, server: Served) -> None:
    run = server.store.create_run(make_run(kind=Kind.WORKFLOW))
    assert api.post(f"/runs/{run.id}/cancel").json()["status"] == "canceled"
    error_of(api.post(f"/runs/{run.id}/cancel"), 409, "ConflictError")


# -- steps ---------------------------------------------------------------------------------
def test_steps_and_attempts_round_trip(api: httpx.Client, server: Served) -> None:
    rid = posted(api)["id"]
    one = Step("train", Status.RUNNING, created=10.0, metadata={"k": 1},
               attempts=(Attempt(1, Status.FAILED, 10.0, 11.0, "boom", {"x": 1}, {}),))
    two = Step("eval", created=12.0)
    answer = api.put(f"/runs/{rid}/steps", json={"steps": [step_to_dict(one),
                                                           step_to_dict(two)]})
    assert answer.status_code == 204
    assert api.get(f"/runs/{rid}/steps").json() == {"steps": [step_to_dict(one),
                                                              step_to_dict(two)]}
    assert api.get(f"/runs/{rid}/steps/one", params={"name": "train"}).json() == \
        step_to_dict(one)
    three = Step("report", created=13.0)
    assert api.put(f"/runs/{rid}/steps/one", json=step_to_dict(three)).json() == \
        step_to_dict(three)
    second = Attempt(2, Status.SUCCEEDED, 12.0, 13.0)
    after = api.post(f"/runs/{rid}/steps/attempt", json={
        "step": "train", "attempt": {"number": 2, "status": "succeeded", "started": 12.0,
                                     "ended": 13.0}}).json()
    assert after == step_to_dict(one.with_attempt(second))
    assert server.store.get_step(rid, "train") == one.with_attempt(second)


def test_step_errors_are_one_line_4xx(api: httpx.Client) -> None:
    rid = posted(api)["id"]
    error_of(api.get(f"/runs/{rid}/steps/one", params={"name": "none"}), 404, "StepNotFound")
    error_of(api.get(f"/runs/{new_id()}/steps"), 404, "RunNotFound")
    error_of(api.put(f"/runs/{rid}/steps/one", json={"name": "s"}), 422, "ValidationError")
    error_of(api.put(f"/runs/{rid}/steps/one", json={"name": "", "created": 1.0}),
             400, "ValidationError")
    error_of(api.post(f"/runs/{rid}/steps/attempt", json={
        "step": "s", "attempt": {"number": -1}}), 422, "ValidationError")
    error_of(api.put(f"/runs/{rid}/steps", json={"steps": [{"name": "a", "created": 1.0,
                                                            "status": "odd"}]}),
             422, "ValidationError")


# -- requests the server refuses whatever the route ----------------------------------------
def test_malformed_json_is_a_one_line_422(api: httpx.Client) -> None:
    answer = api.post("/runs", content=b'{"id": ', headers={"content-type": "application/json"})
    assert "JSON" in error_of(answer, 422, "ValidationError")


def test_a_body_over_the_limit_is_413_before_it_is_read() -> None:
    with served(f"memory://{uuid.uuid4().hex}", max_body=1024) as small, \
            small.client(token(small.store)) as api:
        big = run_to_dict(make_run(metadata={"pad": "x" * 5000}))
        error_of(api.post("/runs", json=big), 413, "ValidationError")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
            yield b'{"id": "'
            yield b"x" * 4096
            yield b'"}'

        error_of(api.post("/runs", content=chunks(),
                          headers={"content-type": "application/json"}),
                 413, "ValidationError")
        assert posted(api)["name"]  # a small one still goes through


def test_an_unknown_route_is_a_one_line_404(api: httpx.Client) -> None:
    error_of(api.get("/no/such/route"), 404, "NotFoundError")
    error_of(api.put("/runs"), 405, "ValidationError")


def test_healthz_answers_without_a_token_and_redacts_the_store(server: Served) -> None:
    for path in ["/api/v1/healthz", "/healthz"]:
        answer = httpx.get(f"{server.base}{path}")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "store": server.context.url}


def test_every_route_declares_its_errors_in_the_published_schema(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["components"]["schemas"]["ErrorBody"]["required"] == ["detail", "type"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            if path.endswith(("/healthz", "/login")):
                assert "503" in declared, (method, path)
                continue
            assert {"400", "401", "403", "404", "422", "503"} <= declared, (method, path)
    runs = schema["paths"]["/api/v1/runs"]["get"]["responses"]["200"]
    assert runs["content"]["application/json"]["schema"] == {"$ref":
                                                             "#/components/schemas/RunPage"}


def test_every_backend_serves_runs_and_steps(store_url: str) -> None:
    with served(store_url) as running, running.client(token(running.store)) as api:
        ids = make_many(running.store)
        page = api.get("/runs", params={"limit": 4}).json()
        rest = api.get("/runs", params={"cursor": page["next_cursor"]}).json()
        assert [r["id"] for r in page["runs"] + rest["runs"]] == ids[::-1]
        assert api.get("/runs/count", params={"tag": "even"}).json() == {"count": 4}
        step = Step("s", created=1.0, attempts=(Attempt(1, started=1.0),))
        assert api.put(f"/runs/{ids[0]}/steps/one", json=step_to_dict(step)).status_code == 200
        assert running.store.get_step(ids[0], "s") == step
        assert api.delete(f"/runs/{ids[0]}").status_code == 204
        assert api.get("/runs/count").json() == {"count": 6}


def test_cors_is_off_unless_one_origin_is_allowed(server: Served) -> None:
    origin = {"Origin": "https://dash.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    plain = httpx.get(f"{server.base}/api/v1/healthz", headers=origin)
    assert "access-control-allow-origin" not in plain.headers
    asked = httpx.options(f"{server.base}/api/v1/runs", headers=preflight)
    assert "access-control-allow-origin" not in asked.headers
    with served(server.context, cors_origin="https://dash.example") as open_to_one:
        allowed = httpx.options(f"{open_to_one.base}/api/v1/runs", headers=preflight)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        other = httpx.options(f"{open_to_one.base}/api/v1/runs",
                              headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # the token is still needed once the browser sends the request itself
        refused = httpx.get(f"{open_to_one.base}/api/v1/runs", headers=origin)
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://dash.example"


def test_only_streamed_uploads_are_exempt_from_the_body_limit() -> None:
    with served(f"memory://{uuid.uuid4().hex}", max_body=1024) as small, \
            small.client(token(small.store)) as api:
        many = {"digests": ["0" * 64] * 100}  # a JSON route beside the upload routes
        error_of(api.post("/blobs/missing", json=many), 413, "ValidationError")


def test_a_store_that_does_not_answer_is_503_with_its_password_hidden() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://runyard:s3cret@127.0.0.1:{port}/nothing?connect_timeout=2"
    with served(StoreContext(url)) as down:
        answer = httpx.get(f"{down.base}/api/v1/healthz", timeout=30)
        detail = error_of(answer, 503, "StoreError")
        assert "s3cret" not in answer.text and "runyard:***@" in detail
        refused = httpx.get(f"{down.base}/api/v1/runs", timeout=30,
                            headers={"Authorization": "Bearer ry_" + "D" * 43})
        error_of(refused, 503, "StoreError")
        assert refused.headers["retry-after"] == "1"


def test_an_integer_past_64_bits_in_metadata_is_answered_whole(api: httpx.Client) -> None:
    run = posted(api, metadata={"big": 10**30, "small": 1, "nested": [-(10**40)]})
    assert run["metadata"] == {"big": 10**30, "small": 1, "nested": [-(10**40)]}
    assert api.get(f"/runs/{run['id']}").json()["metadata"]["big"] == 10**30
