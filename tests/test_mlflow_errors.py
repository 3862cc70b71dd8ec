"""Bad requests to the MLflow-compatible API get MLflow's 4xx error shapes, never a 5xx.

Raw HTTP against a live ``runyard server`` (the session's, emptied for each test): the body of
every refusal is ``{"error_code", "message"}`` with the status MLflow's client expects, since
that client retries any 5xx for minutes. Without a token every MLflow path is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from live_servers import GROUP, LiveServer

pytestmark = pytest.mark.xdist_group(GROUP)

API = "/api/2.0/mlflow"


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers=live_server.headers(),
                      timeout=30.0) as client:
        yield client


def refused(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    assert "\n" not in body["message"]
    return str(body["message"])


def new_run(http: httpx.Client, experiment_id: str = "0") -> str:
    answer = http.post(f"{API}/runs/create", json={"experiment_id": experiment_id,
                                                   "start_time": 1_700_000_000_000})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["run"]["info"]["run_id"])


def test_unknown_run_and_experiment_are_resource_does_not_exist(http: httpx.Client) -> None:
    refused(http.get(f"{API}/runs/get", params={"run_id": "01ABCDEFGHJKMNPQRSTVWXYZ00"}),
            404, "RESOURCE_DOES_NOT_EXIST")
    refused(http.get(f"{API}/runs/get", params={"run_id": "../../etc/passwd"}), 404,
            "RESOURCE_DOES_NOT_EXIST")
    refused(http.get(f"{API}/experiments/get", params={"experiment_id": "42"}), 404,
            "RESOURCE_DOES_NOT_EXIST")
    refused(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "x"}), 404,
            "RESOURCE_DOES_NOT_EXIST")
    refused(http.post(f"{API}/runs/create", json={"experiment_id": "7"}), 404,
            "RESOURCE_DOES_NOT_EXIST")


def test_malformed_bodies_and_missing_fields_are_invalid_parameter_value(
        http: httpx.Client) -> None:
    refused(http.post(f"{API}/runs/log-batch", content=b"{not json"), 400,
            "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/runs/log-batch", json=[1, 2]), 400, "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/runs/log-batch", json={"metrics": []}), 400,
            "INVALID_PARAMETER_VALUE")
    refused(http.get(f"{API}/experiments/get"), 400, "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/experiments/create", json={"name": ""}), 400,
            "INVALID_PARAMETER_VALUE")
    run_id = new_run(http)
    for metric in ({"key": "m", "value": "lots"}, {"key": "m"}, {"key": "", "value": 1},
                   {"key": "a\nb", "value": 1}, {"key": "m", "value": 1, "step": "x"},
                   {"key": "m", "value": 1, "step": 2**70}, {"key": "m", "value": True}):
        refused(http.post(f"{API}/runs/log-metric", json={"run_id": run_id, **metric}), 400,
                "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/runs/update", json={"run_id": run_id, "status": "DONE"}), 400,
            "INVALID_PARAMETER_VALUE")


def test_log_batch_limits_are_mlflows(http: httpx.Client) -> None:
    run_id = new_run(http)
    metrics = [{"key": "m", "value": 1.0, "timestamp": 0, "step": s} for s in range(1001)]
    message = refused(http.post(f"{API}/runs/log-batch", json={"run_id": run_id,
                                                               "metrics": metrics}),
                      400, "INVALID_PARAMETER_VALUE")
    assert "at most 1000 metrics" in message
    params = [{"key": f"p{n}", "value": "v"} for n in range(101)]
    refused(http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params}),
            400, "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "p",
                                                         "value": "v" * 6001}),
            400, "INVALID_PARAMETER_VALUE")
    refused(http.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k" * 251,
                                                   "value": "v"}),
            400, "INVALID_PARAMETER_VALUE")
    ok = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics[:1000]})
    assert ok.status_code == 200 and ok.json() == {}


def test_a_refused_batch_writes_nothing(http: httpx.Client) -> None:
    run_id = new_run(http)
    batch = {"run_id": run_id, "metrics": [{"key": "m", "value": 1.0, "timestamp": 0}],
             "params": [{"key": "p", "value": "a"}, {"key": "p", "value": "b"}]}
    refused(http.post(f"{API}/runs/log-batch", json=batch), 400, "INVALID_PARAMETER_VALUE")
    data = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert data["metrics"] == [] and data["params"] == []


def test_nan_and_infinities_travel_as_mlflows_strings(http: httpx.Client) -> None:
    run_id = new_run(http)
    values = ["NaN", "Infinity", "-Infinity", 1.5]
    metrics = [{"key": "m", "value": v, "timestamp": 1_700_000_000_000, "step": s}
               for s, v in enumerate(values)]
    assert http.post(f"{API}/runs/log-batch", json={"run_id": run_id,
                                                    "metrics": metrics}).status_code == 200
    history = http.get(f"{API}/metrics/get-history", params={"run_id": run_id,
                                                             "metric_key": "m"}).json()
    assert [m["value"] for m in history["metrics"]] == values


def test_an_ended_run_is_not_restarted(http: httpx.Client) -> None:
    run_id = new_run(http)
    done = http.post(f"{API}/runs/update", json={"run_id": run_id, "status": "FINISHED",
                                                 "end_time": 1_700_000_001_000})
    assert done.json()["run_info"]["status"] == "FINISHED"
    refused(http.post(f"{API}/runs/update", json={"run_id": run_id, "status": "RUNNING"}),
            400, "INVALID_STATE")
    again = http.post(f"{API}/runs/update", json={"run_id": run_id, "status": "FINISHED"})
    assert again.status_code == 200  # (what it is already: nothing to change)


def test_bad_filters_order_by_and_page_tokens_are_refused(http: httpx.Client) -> None:
    for body in ({"filter": "metrics.acc >"}, {"filter": "acc > 1 OR x = 'y'"},
                 {"filter": "metrics.acc = 'high'"}, {"filter": "params.p > 1"},
                 {"filter": "attributes.color = 'red'"}, {"filter": "datasets.x = 'y'"},
                 {"filter": "params.p IN ()"}, {"filter": "tags.t = 'unterminated"},
                 {"order_by": ["metrics.acc SIDEWAYS"]}, {"page_token": "garbage!"},
                 {"max_results": 0}, {"max_results": 10**9}, {"run_view_type": "SOME"}):
        refused(http.post(f"{API}/runs/search", json={"experiment_ids": ["0"], **body}), 400,
                "INVALID_PARAMETER_VALUE")


def test_artifact_paths_outside_the_run_are_refused(http: httpx.Client) -> None:
    run_id = new_run(http)
    base = f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts"
    for path in ("../escape.txt", "a/../../b", "/abs"):
        answer = http.put(f"{base}/{path}", content=b"x")
        assert answer.status_code in (400, 404), answer.text
        assert answer.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "ENDPOINT_NOT_FOUND")
    refused(http.put(f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/elsewhere/x",
                     content=b"x"), 400, "INVALID_PARAMETER_VALUE")
    refused(http.get(f"{base}/never-written.txt"), 404, "RESOURCE_DOES_NOT_EXIST")
    listing = http.get("/api/2.0/mlflow-artifacts/artifacts",
                       params={"path": f"0/{run_id}/artifacts/../.."})
    refused(listing, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/registered-models/create",
                                  "/api/2.0/mlflow/traces", "/api/3.0/mlflow/server-info",
                                  "/api/2.0/mlflow/graphql", "/ajax-api/2.0/mlflow/nothing",
                                  "/api/2.0/mlflow-artifacts/mpu/create/x"])
def test_endpoints_outside_the_subset_are_mlflows_not_found_never_retryable(
        http: httpx.Client, path: str) -> None:
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        refused(http.request(method, path, json={}), 404, "ENDPOINT_NOT_FOUND")


def test_logged_model_search_and_log_inputs_answer_empty(http: httpx.Client) -> None:
    run_id = new_run(http)
    assert http.post(f"{API}/logged-models/search", json={}).json() == {}
    answer = http.post(f"{API}/runs/log-inputs", json={"run_id": run_id, "datasets": []})
    assert answer.status_code == 200 and answer.json() == {}


def test_every_route_answers_junk_with_a_4xx(http: httpx.Client) -> None:
    from runyard.server.mlflow import experimentapi, runapi

    junk: list[Any] = [None, "", "x", 5, -1, 2**80, 1.5, True, [], ["a"], {}, {"a": 1},
                       "01ABCDEFGHJKMNPQRSTVWXYZ00", "0", "..", "NaN"]
    fields = ["run_id", "run_uuid", "experiment_id", "experiment_ids", "key", "value",
              "metrics", "params", "tags", "name", "new_name", "status", "filter",
              "order_by", "max_results", "page_token", "run_ids", "metric_key", "step",
              "timestamp", "start_step", "end_step", "experiment_name", "end_time"]
    statuses = set()
    for (method, path, _), (n, field) in itertools.product(
            experimentapi.TABLE + runapi.TABLE, enumerate(fields)):
        value = junk[n % len(junk)]
        body = {field: value, "run_id": junk[(n + 3) % len(junk)]}
        if method == "GET":
            query = {k: v for k, v in body.items() if isinstance(v, str | int)}
            answer = http.get(f"{API}/{path}", params=query)
        else:
            answer = http.post(f"{API}/{path}", json=body)
        statuses.add(answer.status_code)
        assert answer.status_code < 500, (path, body, answer.text)
        if answer.status_code >= 400:
            assert "error_code" in answer.json(), (path, body, answer.text)
    assert statuses >= {400, 404}


def test_without_a_token_every_mlflow_path_is_refused(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30.0) as anonymous:
        for path in (f"{API}/experiments/search", f"{API}/runs/search",
                     "/ajax-api/2.0/mlflow/experiments/search",
                     "/api/2.0/mlflow-artifacts/artifacts"):
            refused(anonymous.post(path, json={}), 401, "UNAUTHENTICATED")
            refused(anonymous.get(path), 401, "UNAUTHENTICATED")
        wrong = anonymous.get(f"{API}/experiments/search",
                              headers={"Authorization": "Bearer ry_not-a-token"})
        refused(wrong, 401, "UNAUTHENTICATED")


def test_a_read_only_token_reads_and_searches_but_never_writes(
        live_server: LiveServer, http: httpx.Client) -> None:
    run_id = new_run(http)
    with httpx.Client(base_url=live_server.url, timeout=30.0,
                      headers=live_server.headers(live_server.read_token)) as reader:
        assert reader.post(f"{API}/runs/search", json={"experiment_ids": ["0"]}).status_code \
            == 200
        assert reader.post(f"{API}/experiments/search", json={}).status_code == 200
        assert reader.get(f"{API}/runs/get", params={"run_id": run_id}).status_code == 200
        for path, body in (("runs/log-batch", {"run_id": run_id}),
                           ("runs/create", {"experiment_id": "0"}),
                           ("experiments/create", {"name": "x"}),
                           ("runs/delete", {"run_id": run_id})):
            refused(reader.post(f"{API}/{path}", json=body), 403, "PERMISSION_DENIED")
        put = reader.put(f"/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts/a.txt",
                         content=b"x")
        refused(put, 403, "PERMISSION_DENIED")


def test_the_ajax_api_prefix_serves_the_same_api(http: httpx.Client) -> None:
    created = http.post("/ajax-api/2.0/mlflow/experiments/create", json={"name": "ui"})
    experiment_id = created.json()["experiment_id"]
    found = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "ui"})
    assert found.json()["experiment"]["experiment_id"] == experiment_id
    refused(http.get("/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": "99"}),
            404, "RESOURCE_DOES_NOT_EXIST")
