"""The metric, event and log routes, M4 downsampling and the watch streams, through a live server.

Every request goes over a real socket to uvicorn on 127.0.0.1 serving a real store (SQLite, the
server's default; the memory store too where the route's behaviour is the server's alone), and
each test checks what it wrote through the store itself as well as over HTTP.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from runyard.core.downsample import m4
from runyard.model import RunRecord, Status, new_id
from runyard.model.records import Event, LogLine, Metric
from server_helpers import Served, served, server_process, token

COLUMNS = {"names": ["loss", "loss", "acc"], "values": [0.5, "NaN", "-Infinity"],
           "steps": [0, 1, None], "times": [10.0, 11.0, 12.0]}


@pytest.fixture(params=["sqlite", "memory"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path}/runyard.db" if request.param == "sqlite" else "memory://"
    with served(url) as server:
        yield server


@pytest.fixture
def api(live: Served) -> Iterator[httpx.Client]:
    with live.client(token(live.store)) as client:
        yield client


def new_run(live: Served, **fields: Any) -> RunRecord:
    """A running run in the server's store."""
    run = live.store.create_run(RunRecord(id=new_id(), name=f"r-{new_id()[-8:].lower()}",
                                          **fields))
    return live.store.update_status(run.id, Status.RUNNING)


def post_batch(api: httpx.Client, run_id: str, body: Any, key: str | None = "k-1") -> Any:
    headers = [(b"Content-Type", b"application/json")]
    if key is not None:
        headers.append((b"Idempotency-Key", key.encode()))
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.post(f"/runs/{run_id}/batch", content=content, headers=headers)


def same(a: list[float], b: list[float]) -> bool:
    return [repr(x) for x in a] == [repr(y) for y in b]


# --- POST /batch ------------------------------------------------------------------------------


def test_a_batch_is_appended_once_per_idempotency_key(live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    body = {"metrics": COLUMNS, "events": [{"time": 1.0, "message": "hi", "level": "warn"}],
            "logs": [{"time": 2.0, "text": "out", "stream": "stderr", "step": "train"}]}
    first, again = post_batch(api, run.id, body), post_batch(api, run.id, body)
    assert (first.status_code, first.json()) == (200, {"applied": True})
    assert (again.status_code, again.json()) == (200, {"applied": False})
    stored = live.store.read_metrics(run.id)
    assert [(m.name, m.step, m.time) for m in stored] == [
        ("loss", 0, 10.0), ("loss", 1, 11.0), ("acc", None, 12.0)]
    assert same([m.value for m in stored], [0.5, math.nan, -math.inf])
    assert live.store.read_events(run.id) == [Event(1.0, "hi", "warn")]
    assert live.store.read_logs(run.id) == [LogLine(2.0, "out", "stderr", "train")]
    assert api.get(f"/runs/{run.id}/metrics").json() == COLUMNS


@pytest.mark.parametrize("key", [None, "", "has space", "a/b", "x" * 129, "ключ"])
def test_a_batch_without_a_well_formed_key_is_refused(live: Served, api: httpx.Client,
                                                       key: str | None) -> None:
    run = new_run(live)
    answer = post_batch(api, run.id, {"metrics": COLUMNS}, key=key)
    assert answer.status_code in (400, 422)
    assert answer.json()["type"] == "ValidationError" and "\n" not in answer.json()["detail"]
    assert live.store.read_metrics(run.id) == []


BAD_BODIES = [
    b"{not json", b"[]", b'"text"', b"null", b"",
    {"metrics": COLUMNS, "extra": 1},
    {"metrics": {"names": ["a"], "values": [1.0], "steps": [0]}},
    {"metrics": {"names": ["a", "b"], "values": [1.0], "steps": [0], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [True], "steps": [0], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": ["nan"], "steps": [0], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [1.0], "steps": [2**70], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [1.0], "steps": [2**63], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [1e308 * 10], "steps": [0], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [1.0], "steps": [0.5], "times": [1.0]}},
    {"metrics": {"names": [""], "values": [1.0], "steps": [0], "times": [1.0]}},
    {"metrics": {"names": ["a"], "values": [1.0], "steps": [0], "times": ["Infinity"]}},
    {"metrics": [1, 2]},
    {"events": [{"time": 1.0}]}, {"events": {"time": 1.0, "message": "m"}},
    {"events": [{"time": "now", "message": "m"}]},
    {"logs": [{"time": 1.0, "text": 5}]}, {"logs": [{"time": 1.0, "text": "t", "step": 3}]},
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_malformed_batch_gets_one_line_4xx_and_writes_nothing(
        live: Served, api: httpx.Client, body: Any) -> None:
    run = new_run(live)
    good = {"metrics": COLUMNS, "events": [{"time": 1.0, "message": "ok"}]}
    # a good batch first in the same request body would be a different key; the bad one
    # must not burn its key either: the same key then applies a good batch
    bad = body if isinstance(body, bytes) else {**good, **body}
    answer = post_batch(api, run.id, bad, key="same-key")
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"detail", "type"} and "\n" not in answer.json()["detail"]
    assert live.store.read_metrics(run.id) == [] and live.store.read_events(run.id) == []
    assert post_batch(api, run.id, good, key="same-key").json() == {"applied": True}


# --- metrics --------------------------------------------------------------------------------


def test_metric_columns_append_and_read_back_by_name_and_ranges(
        live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    columns = {"names": ["m"] * 5, "values": [0.0, 1.0, "Infinity", 3.0, 4.0],
               "steps": [0, 1, 2, None, 4], "times": [100.0, 101.0, 102.0, 103.0, 104.0]}
    assert api.post(f"/runs/{run.id}/metrics", json=columns).status_code == 204
    for _ in range(2):  # with a key: once
        keyed = api.post(f"/runs/{run.id}/metrics", headers={"Idempotency-Key": "m-2"},
                         json={"names": ["n"], "values": [9.0], "steps": [0], "times": [1.0]})
        assert keyed.status_code == 204
    assert [m.name for m in live.store.read_metrics(run.id)] == ["m"] * 5 + ["n"]
    assert api.get(f"/runs/{run.id}/metrics", params={"name": "m"}).json() == columns
    ranged = api.get(f"/runs/{run.id}/metrics",
                     params={"name": "m", "step_min": 1, "step_max": 4}).json()
    assert (ranged["steps"], ranged["values"]) == ([1, 2, 4], [1.0, "Infinity", 4.0])
    timed = api.get(f"/runs/{run.id}/metrics",
                    params={"name": "m", "time_min": 102.5, "time_max": 103.0}).json()
    assert (timed["steps"], timed["values"]) == ([None], [3.0])
    no_name = api.get(f"/runs/{run.id}/metrics", params={"step_min": 1})
    assert no_name.status_code == 400 and "name" in no_name.json()["detail"]


def test_metric_summary_per_name_keeps_nan_and_infinities(live: Served,
                                                          api: httpx.Client) -> None:
    run = new_run(live)
    live.store.append_metrics(run.id, [Metric("a", 1.0, 0, 1.0), Metric("a", -math.inf, 1, 2.0),
                                       Metric("b", math.nan, None, 3.0)])
    found = {s["name"]: s for s in api.get(f"/runs/{run.id}/metrics/summary").json()["metrics"]}
    assert found["a"]["count"] == 2 and found["a"]["last"] == "-Infinity"
    assert found["a"]["last_step"] == 1 and found["b"]["last"] == "NaN"


def test_downsample_answers_the_m4_points_of_the_series(live: Served,
                                                        api: httpx.Client) -> None:
    run = new_run(live)
    n = 20_000
    steps = list(range(n))
    values = [math.sin(i / 50.0) + (5.0 if i == 777 else 0.0) for i in steps]
    values[1234] = math.nan
    live.store.append_metric_columns(run.id, ["s"] * n, values, steps, [1e9 + i for i in steps])
    live.store.append_metrics(run.id, [Metric("s", 99.0, None, 1e9 + n)])  # no step
    got = api.get(f"/runs/{run.id}/metrics/downsample", params={"name": "s", "buckets": 300})
    assert got.status_code == 200
    body = got.json()
    expect = m4(np.array(steps), np.array(values), 300)
    assert (body["name"], body["x"], body["buckets"], body["count"]) == ("s", "step", 300, n)
    assert body["points"]["x"] == expect.x.tolist()
    assert same([math.nan if y == "NaN" else y for y in body["points"]["y"]], expect.y.tolist())
    assert 5.0 + math.sin(777 / 50.0) in body["points"]["y"] and len(body["points"]["x"]) <= 1200


def test_downsample_by_time_within_a_range(live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    times = [1000.0 + i for i in range(100)]
    live.store.append_metric_columns(run.id, ["t"] * 100, [float(i % 7) for i in range(100)],
                                     [None] * 100, times)
    body = api.get(f"/runs/{run.id}/metrics/downsample", params={
        "name": "t", "x": "time", "buckets": 5, "min": 1010, "max": 1049.5}).json()
    expect = m4(np.array(times), np.array([float(i % 7) for i in range(100)]), 5, 1010, 1049.5)
    assert body["count"] == 40 == expect.total
    assert body["points"] == {"x": expect.x.tolist(), "y": expect.y.tolist()}


@pytest.mark.parametrize("params", [
    {}, {"name": "s", "buckets": 0}, {"name": "s", "buckets": 10_001},
    {"name": "s", "x": "epoch"}, {"name": "s", "min": "nan"}, {"name": "s", "max": "inf"}])
def test_downsample_refuses_bad_parameters(live: Served, api: httpx.Client,
                                           params: dict[str, Any]) -> None:
    run = new_run(live)
    answer = api.get(f"/runs/{run.id}/metrics/downsample", params=params)
    assert answer.status_code == 422 and answer.json()["type"] == "ValidationError"


# --- events, logs, streams --------------------------------------------------------------------


def test_events_and_logs_append_and_read_with_since_tail_and_step(
        live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    events = [{"time": float(t), "message": f"e{t}", "level": "info"} for t in range(5)]
    lines = [{"time": float(t), "text": f"l{t}", "stream": "stdout",
              "step": "a" if t % 2 else None} for t in range(5)]
    assert api.post(f"/runs/{run.id}/events", json={"events": events}).status_code == 204
    assert api.post(f"/runs/{run.id}/logs", json={"lines": lines}).status_code == 204
    assert live.store.read_events(run.id)[0] == Event(0.0, "e0", "info")
    read = api.get(f"/runs/{run.id}/events", params={"since": 1, "tail": 2}).json()
    assert read == {"events": events[3:]}
    assert api.get(f"/runs/{run.id}/logs", params={"step": "a"}).json() == {
        "lines": [lines[1], lines[3]]}
    assert api.get(f"/runs/{run.id}/logs", params={"tail": 1}).json() == {"lines": lines[4:]}


def test_streams_missing_appends_only_what_the_run_lacks_and_reads_from_a_position(
        live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    items = [{"name": "m", "value": v, "step": i, "time": 1.0 + i}
             for i, v in enumerate([1.0, "NaN", 3.0])]
    url = f"/runs/{run.id}/streams/metrics"
    assert api.post(url + "/missing", json={"start": 0, "items": items[:2]}).json() == {
        "appended": 2}
    assert api.post(url + "/missing", json={"start": 0, "items": items}).json() == {
        "appended": 1}
    assert len(live.store.read_metrics(run.id)) == 3
    assert api.get(url, params={"start": 1, "limit": 1}).json() == {"items": items[1:2],
                                                                    "next": 2}
    assert api.get(url, params={"start": 5}).json() == {"items": [], "next": 5}
    assert api.get(url, params={"start": 2**70, "limit": 2**70}).json() == {
        "items": [], "next": 2**62}
    assert api.get(f"/runs/{run.id}/streams/secrets").status_code == 422


def test_every_stream_route_answers_404_for_an_unknown_run(api: httpx.Client) -> None:
    ghost = new_id()
    calls = [("POST", "batch", {"events": []}, {"Idempotency-Key": "k"}),
             ("POST", "metrics", COLUMNS, {}), ("GET", "metrics", None, {}),
             ("GET", "metrics/summary", None, {}), ("GET", "metrics/downsample?name=a", None, {}),
             ("POST", "events", {"events": []}, {}), ("GET", "events", None, {}),
             ("POST", "logs", {"lines": []}, {}), ("GET", "logs", None, {}),
             ("POST", "streams/logs/missing", {"start": 0, "items": []}, {}),
             ("GET", "streams/logs", None, {}), ("GET", "watch", None, {})]
    for method, path, body, headers in calls:
        answer = api.request(method, f"/runs/{ghost}/{path}", json=body, headers=headers)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["type"] == "RunNotFound"


WRITES = [("batch", {"metrics": COLUMNS}), ("metrics", COLUMNS),
          ("events", {"events": [{"time": 1.0, "message": "m"}]}),
          ("logs", {"lines": [{"time": 1.0, "text": "t"}]}),
          ("streams/logs/missing", {"start": 0, "items": [{"time": 1.0, "text": "t"}]})]


@pytest.mark.parametrize("path, body", WRITES, ids=[path for path, _ in WRITES])
def test_a_read_only_token_reads_but_cannot_append(live: Served, path: str, body: Any) -> None:
    run = new_run(live)
    with live.client(token(live.store, read_only=True)) as reader:
        assert reader.get(f"/runs/{run.id}/metrics").status_code == 200
        refused = reader.post(f"/runs/{run.id}/{path}", json=body,
                              headers={"Idempotency-Key": "r-1"})
        assert refused.status_code == 403 and refused.json()["type"] == "Forbidden"
    with live.client() as anonymous:
        assert anonymous.post(f"/runs/{run.id}/{path}", json=body,
                              headers={"Idempotency-Key": "r-1"}).status_code == 401
    assert live.store.read_metrics(run.id) == [] and live.store.read_logs(run.id) == []
    assert live.store.read_events(run.id) == []


def test_reading_any_stream_route_needs_a_token(live: Served) -> None:
    run = new_run(live)
    paths = ["metrics", "metrics/summary", "metrics/downsample?name=m", "events", "logs",
             "streams/metrics", "watch"]
    with live.client() as anonymous:
        for path in paths:
            assert anonymous.get(f"/runs/{run.id}/{path}").status_code == 401, path
        assert anonymous.get("/watch/runs").status_code == 401


def test_a_batch_of_a_megabyte_and_more_is_taken_whole(live: Served, api: httpx.Client) -> None:
    run = new_run(live)
    n = 100_000
    big = {"names": ["big"] * n, "values": [i / 3 for i in range(n)], "steps": list(range(n)),
           "times": [1e9 + i for i in range(n)]}
    answer = post_batch(api, run.id, {"metrics": big}, key="big-1")
    assert answer.json() == {"applied": True}
    assert len(live.store.read_metrics(run.id, "big")) == n


# --- watch ------------------------------------------------------------------------------------


class Sse:
    """A server-sent-event reader over an open httpx stream: (event, data, id) at a time."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer, self.lines = answer, answer.iter_lines()
        self.last_id: str | None = None

    def next(self) -> tuple[str, Any]:
        event, data = "message", ""
        for line in self.lines:
            if line == "" and data:
                return event, orjson.loads(data)
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data += value
            elif field == "id":
                self.last_id = value
        return "closed", None

    def until(self, wanted: str) -> list[tuple[str, Any]]:
        seen = []
        while True:
            seen.append(self.next())
            if seen[-1][0] in (wanted, "closed"):
                return seen


def watch(client: httpx.Client, path: str, **params: Any) -> Any:
    return client.stream("GET", path, params=params, timeout=httpx.Timeout(30.0))


def test_watching_a_run_sends_its_rows_and_status_then_end(live: Served,
                                                           api: httpx.Client) -> None:
    run = new_run(live)
    live.store.append_metrics(run.id, [Metric("m", 1.0, 0, 1.0)])
    with watch(api, f"/runs/{run.id}/watch", metrics=1, logs=1, events=1) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        sse = Sse(answer)
        assert sse.next() == ("status", sse_run(live, run.id))
        assert sse.next() == ("metrics", {"names": ["m"], "values": [1.0], "steps": [0],
                                          "times": [1.0]})
        live.store.append_metrics(run.id, [Metric("m", math.nan, 1, 2.0)])
        live.store.append_logs(run.id, [LogLine(3.0, "hello")])
        live.store.append_events(run.id, [Event(4.0, "done")])
        live.store.update_status(run.id, Status.SUCCEEDED)
        seen = sse.until("end")
    kinds = [kind for kind, _ in seen]
    assert kinds[-1] == "end" and seen[-1][1] == {"id": run.id, "status": "succeeded"}
    assert ("metrics", {"names": ["m"], "values": ["NaN"], "steps": [1], "times": [2.0]}) in seen
    assert ("logs", {"lines": [{"time": 3.0, "text": "hello", "stream": "stdout",
                                "step": None}]}) in seen
    assert ("events", {"events": [{"time": 4.0, "message": "done", "level": "info"}]}) in seen
    assert [d["status"] for k, d in seen if k == "status"][-1] == "succeeded"


def sse_run(live: Served, run_id: str) -> dict[str, Any]:
    from runyard.model.codec import run_to_dict

    doc: dict[str, Any] = orjson.loads(orjson.dumps(run_to_dict(live.store.get_run(run_id))))
    return doc


def test_a_finished_runs_watch_sends_everything_then_end_at_once(live: Served,
                                                                 api: httpx.Client) -> None:
    run = new_run(live)
    live.store.append_logs(run.id, [LogLine(float(i), f"line {i}") for i in range(25_000)])
    live.store.update_status(run.id, Status.FAILED, "exit 1")
    with watch(api, f"/runs/{run.id}/watch", logs=1) as answer:
        seen = Sse(answer).until("end")
    texts = [line["text"] for kind, data in seen if kind == "logs" for line in data["lines"]]
    assert texts == [f"line {i}" for i in range(25_000)]
    assert [kind for kind, _ in seen][-1] == "end" and seen[0][1]["status"] == "failed"


def test_a_reconnecting_watcher_resumes_after_its_last_event_id(live: Served,
                                                                api: httpx.Client) -> None:
    run = new_run(live)
    live.store.append_logs(run.id, [LogLine(1.0, "one"), LogLine(2.0, "two")])
    with watch(api, f"/runs/{run.id}/watch", logs=1, metrics=1) as answer:
        sse = Sse(answer)
        sse.until("logs")
    assert sse.last_id == "metrics=0,logs=2"
    live.store.append_logs(run.id, [LogLine(3.0, "three")])
    live.store.update_status(run.id, Status.SUCCEEDED)
    with api.stream("GET", f"/runs/{run.id}/watch", params={"logs": 1, "metrics": 1},
                    headers={"Last-Event-ID": sse.last_id}) as answer:
        seen = Sse(answer).until("end")
    assert [d["lines"][0]["text"] for k, d in seen if k == "logs"] == ["three"]


def test_watching_the_run_list_sends_new_runs_changes_and_removals(
        live: Served, api: httpx.Client) -> None:
    old = new_run(live, tags=frozenset({"keep"}))
    new_run(live)  # not tagged: not in the filtered list
    with watch(api, "/watch/runs", tag="keep", limit=2) as answer:
        sse = Sse(answer)
        assert sse.next() == ("run", sse_run(live, old.id))
        added = new_run(live, tags=frozenset({"keep"}))
        kind, data = sse.next()
        assert (kind, data["id"]) == ("run", added.id)
        live.store.update_status(old.id, Status.SUCCEEDED)
        kind, data = sse.next()
        assert (kind, data["id"], data["status"]) == ("run", old.id, "succeeded")
        live.store.delete_run(added.id)
        assert sse.next() == ("removed", {"id": added.id})
        live.store.update_run(old.id, heartbeat=time.time())  # a heartbeat alone is no news
        third = new_run(live, tags=frozenset({"keep"}))
        kind, data = sse.next()
        assert (kind, data["id"]) == ("run", third.id)


def test_watching_a_run_deleted_meanwhile_says_removed_and_closes(live: Served,
                                                                  api: httpx.Client) -> None:
    run = new_run(live)
    with watch(api, f"/runs/{run.id}/watch") as answer:
        sse = Sse(answer)
        assert sse.next()[0] == "status"
        live.store.delete_run(run.id)
        assert sse.next() == ("removed", {"id": run.id})
        assert sse.next() == ("closed", None)


def test_a_server_shutting_down_ends_its_open_watch_streams(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """uvicorn waits for open responses before it exits (up to its graceful timeout, then it
    cancels them and says so): a watch stream must end by itself as the shutdown begins."""
    from runyard.stores import open_store

    url = f"sqlite:///{tmp_path}/runyard.db"
    store = open_store(url)
    run = store.create_run(RunRecord(id=new_id(), name="still-running"))
    store.update_status(run.id, Status.RUNNING)
    text = token(store)
    store.close()
    with server_process(url, "--no-access-log") as server, server.client(text) as client:
        ended = threading.Event()
        with watch(client, f"/runs/{run.id}/watch", logs=1) as answer:
            sse = Sse(answer)
            assert sse.next()[0] == "status"

            def drain() -> None:
                assert sse.next() == ("closed", None)
                ended.set()

            reader = threading.Thread(target=drain)
            reader.start()
            server.process.terminate()
            exit_code = server.process.wait(60)
            reader.join(60)
    assert exit_code == 0 and ended.is_set()
    assert "graceful shutdown exceeded" not in capfd.readouterr().err
