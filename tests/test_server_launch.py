"""Starting command runs and workflows through a live ``runyard server``: detached on the
server's machine, read back like any run (status, output buffers, workflow results)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_servers import GROUP, LiveServer, running

FLOWS = '''
from runyard import task, workflow


@task
def double(x):
    return 2 * x


@workflow
def doubled(values, offset=0):
    return [double(v + offset) for v in values]


def plain():
    return 1
'''
SHOUT = {"name": "shout", "buffers": {"inputs": ["input"], "outputs": ["output"]},
         "command": ["bash", "-c", 'tr a-z A-Z < "$INPUT_PIPE" > "$OUTPUT_PIPE"']}
GREET = {"name": "greet", "buffers": {"inputs": [], "outputs": ["output"]},
         "command": ["bash", "-c", 'echo "hello $*" > "$OUTPUT_PIPE"', "greet"]}
TERMINAL = {"succeeded", "failed", "canceled", "lost"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own whose Python path holds the module ``ry_api_flows``."""
    folder = tmp_path_factory.mktemp("launch")
    modules = folder / "modules"
    modules.mkdir()
    (modules / "ry_api_flows.py").write_text(FLOWS)
    (modules / "ry_api_exits.py").write_text("raise SystemExit(3)\n")
    with running(f"sqlite://{folder}/store/runyard.db", folder,
                 env={"PYTHONPATH": str(modules)}) as started:
        yield started


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as made:
        yield made


def finished(client: httpx.Client, run_id: str, limit: float = 120.0) -> dict[str, Any]:
    """The run once it has ended (or as it is after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
    while run["status"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.get(f"/runs/{run_id}").json()
    return run


def test_a_command_run_started_through_the_api_succeeds_with_its_output_readable(
        client: httpx.Client) -> None:
    source = client.post("/buffers", json={}).json()["id"]
    client.put(f"/buffers/{source}/data", content=b"quiet words\n")
    started = client.post("/runs/command", json={
        "codespec": SHOUT, "buffers": {"input": source}, "name": "shout-once",
        "tags": ["team=api"], "folder": "/api", "timeout": "5m"})
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["kind"], run["name"], run["folder"]) == ("command", "shout-once", "/api")
    assert run["status"] in ("pending", "running") and "team=api" in run["tags"]
    assert run["parameters"]["timeout_s"] == 300
    output = run["parameters"]["buffers"]["output"]
    streamed = client.get(f"/buffers/{output}/data", params={"follow": 1}, timeout=120)
    assert streamed.content == b"QUIET WORDS\n"
    assert finished(client, run["id"])["status"] == "succeeded"


def test_a_registered_codespec_runs_by_name_and_version_with_args(client: httpx.Client) -> None:
    client.post("/codespecs", json={"name": "greet", "digest": "v1", "spec": GREET})
    client.post("/codespecs", json={"name": "greet", "digest": "v2",
                                    "spec": {**GREET, "command": ["false"]}})
    started = client.post("/runs/command", json={"codespec": "greet", "version": 1,
                                                 "args": ["big", "world"], "replicas": 1})
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["parameters"]["codespec"] == "greet/versions/1"
    assert finished(client, run["id"])["status"] == "succeeded"
    output = run["parameters"]["buffers"]["output"]
    assert client.get(f"/buffers/{output}/data").content == b"hello big world\n"


@pytest.mark.parametrize(("body", "status", "kind"), [
    ({"codespec": "no-such-spec"}, 404, "CodespecNotFound"),
    ({"codespec": SHOUT, "buffers": {"nothing": "x"}}, 400, "ValidationError"),
    ({"codespec": SHOUT, "buffers": {"input": "no-such-buffer"}}, 404, "BufferNotFound"),
    ({"codespec": SHOUT, "timeout": "soon"}, 400, "ValidationError"),
    ({"codespec": SHOUT, "version": 2}, 400, "ValidationError"),
    ({"codespec": {"name": "x"}}, 400, "ValidationError"),
    ({"codespec": SHOUT, "replicas": 0}, 422, "ValidationError"),
    ({"codespec": 5}, 422, "ValidationError"),
])
def test_a_bad_command_run_request_is_refused_in_one_line(client: httpx.Client,
                                                          body: dict[str, Any], status: int,
                                                          kind: str) -> None:
    answer = client.post("/runs/command", json=body)
    assert answer.status_code == status and answer.json()["type"] == kind
    assert "\n" not in answer.json()["detail"]


def test_a_workflow_started_through_the_api_gives_its_results(server: LiveServer,
                                                              client: httpx.Client) -> None:
    from runyard.engine import WorkflowRun

    started = client.post("/runs/workflow", json={
        "workflow": "ry_api_flows:doubled", "args": [[1, 2, 3]], "kwargs": {"offset": 1},
        "name": "doubled-once", "tags": ["api"], "folder": "/flows"})
    assert started.status_code == 202, started.text
    run = started.json()
    assert (run["kind"], run["name"], run["folder"], run["tags"]) == (
        "workflow", "doubled-once", "/flows", ["api"])
    assert finished(client, run["id"])["status"] == "succeeded"
    assert WorkflowRun.by_id(run["id"], server.store_url).get_results() == [4, 6, 8]


@pytest.mark.parametrize(("target", "says"), [
    ("no_such_module_here:flow", "cannot import"),
    ("ry_api_flows:missing", "has no"),
    ("ry_api_flows:plain", "is not a @workflow"),
    ("ry_api_flows", "module:function"),
    ("ry_api_exits:flow", "SystemExit"),
])
def test_a_workflow_that_cannot_be_imported_is_a_clear_400(client: httpx.Client, target: str,
                                                           says: str) -> None:
    answer = client.post("/runs/workflow", json={"workflow": target})
    assert answer.status_code == 400 and says in answer.json()["detail"]
    assert client.get("/codespecs").status_code == 200  # the server is still there


def test_a_workflow_called_with_the_wrong_arguments_is_a_400(client: httpx.Client) -> None:
    answer = client.post("/runs/workflow", json={"workflow": "ry_api_flows:doubled",
                                                 "kwargs": {"nope": 1}})
    assert answer.status_code == 400 and "doubled" in answer.json()["detail"]
    unknown = client.post("/runs/workflow", json={"workflow": "ry_api_flows:doubled",
                                                  "args": [[1]], "runtime": "no-such-config"})
    assert unknown.status_code == 404 and unknown.json()["type"] == "ConfigNotFound"


def test_a_read_only_token_cannot_launch(server: LiveServer, tmp_path: Path) -> None:
    with server.client(server.read_token) as reader:
        assert reader.post("/runs/command", json={"codespec": SHOUT}).status_code == 403
        assert reader.post("/runs/workflow", json={
            "workflow": "ry_api_flows:doubled", "args": [[1]]}).status_code == 403
    with httpx.Client(base_url=server.url + "/api/v1") as anonymous:
        assert anonymous.post("/runs/workflow", json={
            "workflow": "ry_api_flows:doubled", "args": [[1]]}).status_code == 401


@pytest.mark.xdist_group(GROUP)
def test_a_command_run_started_on_the_postgres_server_succeeds(live_postgres: LiveServer
                                                               ) -> None:
    live_postgres.wipe()
    with live_postgres.client() as client:
        source = client.post("/buffers", json={}).json()["id"]
        client.put(f"/buffers/{source}/data", content=b"from four workers\n")
        started = client.post("/runs/command", json={"codespec": SHOUT,
                                                     "buffers": {"input": source}})
        assert started.status_code == 202, started.text
        run = started.json()
        output = run["parameters"]["buffers"]["output"]
        streamed = client.get(f"/buffers/{output}/data", params={"follow": 1}, timeout=120)
        assert streamed.content == b"FROM FOUR WORKERS\n"
        assert finished(client, run["id"])["status"] == "succeeded"
