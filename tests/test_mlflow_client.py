"""The real ``mlflow`` client (pinned in the dev extra) logging to a live ``runyard server``.

Nothing here is a double: the client is MLflow's own, run in this process with
``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN`` set, against ``runyard server`` on
127.0.0.1 over a SQLite store (the session's server, emptied for each test). What the client
logged is then read back through MLflow, through runyard's store and through runyard's CLI.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import backend_url
from live_servers import GROUP, LiveServer, free_port, running

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = pytest.mark.xdist_group(GROUP)


def use(server: LiveServer, monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    if token is None:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    mlflow.set_tracking_uri(server.url)


@pytest.fixture
def ml(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The emptied session server, the client pointed at it with the writer's token."""
    use(live_server, monkeypatch, live_server.token)
    mlflow.set_experiment(experiment_id="0")  # (the client remembers the last test's)
    yield live_server
    while mlflow.active_run() is not None:
        mlflow.end_run()


def store_of(server: LiveServer) -> Any:
    from runyard.stores import open_store

    return open_store(server.store_url)


def id_of(name: str) -> str:
    found = MlflowClient().get_experiment_by_name(name)
    assert found is not None, name
    return str(found.experiment_id)


def runyard_cli(server: LiveServer, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "runyard", "--store", server.store_url, *args],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_set_experiment_creates_it_once_and_search_experiments_finds_it(ml: LiveServer) -> None:
    first = mlflow.set_experiment("team/baseline")
    again = mlflow.set_experiment("team/baseline")
    other = mlflow.set_experiment("ablation #2")
    assert first.experiment_id == again.experiment_id != other.experiment_id
    assert first.artifact_location == f"mlflow-artifacts:/{first.experiment_id}"
    client = MlflowClient()
    client.set_experiment_tag(first.experiment_id, "owner", "ana")
    found = mlflow.search_experiments(filter_string="name LIKE 'team/%'")
    assert [(e.name, e.tags) for e in found] == [("team/baseline", {"owner": "ana"})]
    names = {e.name for e in mlflow.search_experiments()}
    assert names == {"Default", "team/baseline", "ablation #2"}
    assert client.get_experiment_by_name("nope") is None


def test_start_run_with_all_arguments_round_trips_name_tags_and_description(
        ml: LiveServer) -> None:
    experiment = mlflow.set_experiment("args")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="lr=0.1 wide",
                          tags={"team": "vision"}, description="a wide net",
                          log_system_metrics=False) as parent, \
            mlflow.start_run(run_name="child", nested=True) as child:
        pass
    run = MlflowClient().get_run(parent.info.run_id)
    assert run.info.run_name == "lr=0.1 wide"
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert run.data.tags["team"] == "vision"
    assert run.data.tags["mlflow.note.content"] == "a wide net"
    assert run.data.tags["mlflow.runName"] == "lr=0.1 wide"
    assert run.data.tags["mlflow.user"] == run.info.user_id
    nested = MlflowClient().get_run(child.info.run_id)
    assert nested.data.tags["mlflow.parentRunId"] == parent.info.run_id
    record = store_of(ml).get_run(parent.info.run_id)  # a runyard tracked run, in its folder
    assert (record.kind.value, record.folder, record.status.value) == \
        ("tracked", "/args", "succeeded")


def test_params_metrics_and_tags_one_by_one_and_batched_keep_nan_and_infinities(
        ml: LiveServer) -> None:
    mlflow.set_experiment("logging")
    with mlflow.start_run() as active:
        mlflow.log_param("lr", 0.1)
        mlflow.log_metric("loss", 2.0, step=0)
        mlflow.set_tag("stage", "warmup")
        mlflow.log_params({"depth": 3, "act": "relu"})
        mlflow.log_metrics({"loss": float("nan"), "up": float("inf"), "down": float("-inf")},
                           step=1)
        mlflow.set_tags({"stage": "train", "seed": "7"})
        MlflowClient().log_batch(active.info.run_id, metrics=[Metric("acc", 0.5, 1000, 2)],
                                 params=[Param("batch", "64")], tags=[RunTag("k", "v")])
    data = MlflowClient().get_run(active.info.run_id).data
    assert data.params == {"lr": "0.1", "depth": "3", "act": "relu", "batch": "64"}
    assert math.isnan(data.metrics["loss"]) and data.metrics["acc"] == 0.5
    assert data.metrics["up"] == math.inf and data.metrics["down"] == -math.inf
    assert {k: data.tags[k] for k in ("stage", "seed", "k")} == \
        {"stage": "train", "seed": "7", "k": "v"}
    series = store_of(ml).read_metrics(active.info.run_id, "loss")
    assert [m.step for m in series] == [0, 1] and math.isnan(series[1].value)


def test_a_param_keeps_its_first_value(ml: LiveServer) -> None:
    with mlflow.start_run():
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.1")  # the same value again is fine
        with pytest.raises(MlflowException, match="Changing param values is not allowed") \
                as refused:
            mlflow.log_param("lr", "0.2")
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_tag_removes_an_mlflow_tag_and_a_runyard_tag(ml: LiveServer) -> None:
    with mlflow.start_run() as active:
        mlflow.set_tag("gone", "soon")
    run_id = active.info.run_id
    store_of(ml).add_tags(run_id, ["from-runyard"])
    client = MlflowClient()
    assert client.get_run(run_id).data.tags["from-runyard"] == ""
    client.delete_tag(run_id, "gone")
    client.delete_tag(run_id, "from-runyard")
    tags = client.get_run(run_id).data.tags
    assert "gone" not in tags and "from-runyard" not in tags
    with pytest.raises(MlflowException) as refused:
        client.delete_tag(run_id, "never-set")
    assert refused.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_metric_history_comes_back_whole_across_pages(ml: LiveServer) -> None:
    with mlflow.start_run() as active:
        client, run_id = MlflowClient(), active.info.run_id
        for start in range(0, 30_000, 1000):  # the client reads 25,000 a page
            client.log_batch(run_id, metrics=[Metric("x", float(s), 1_700_000_000_000 + s, s)
                                              for s in range(start, start + 1000)])
    history = client.get_metric_history(run_id, "x")
    assert [m.step for m in history] == list(range(30_000))
    assert history[-1].value == 29_999.0 and history[5].timestamp == 1_700_000_000_005
    pages, token = [], None
    with httpx.Client(base_url=ml.url, headers=ml.headers()) as http:
        while True:
            query = {"run_id": run_id, "metric_key": "x", "max_results": 12_000}
            answer = http.get("/api/2.0/mlflow/metrics/get-history",
                              params={**query, **({"page_token": token} if token else {})})
            pages.append(len(answer.json()["metrics"]))
            token = answer.json().get("next_page_token")
            if not token:
                break
    assert pages == [12_000, 12_000, 6_000]


def test_bulk_interval_samples_steps_for_plots_keeping_first_and_last(ml: LiveServer) -> None:
    with mlflow.start_run() as one:
        mlflow.log_metrics({"y": 1.0}, step=0)
        for step in range(0, 10_000, 100):
            MlflowClient().log_batch(one.info.run_id, metrics=[
                Metric("y", float(s), 0, s) for s in range(step, step + 100)])
    with httpx.Client(base_url=ml.url, headers=ml.headers()) as http:
        answer = http.get("/api/2.0/mlflow/metrics/get-history-bulk-interval", params={
            "run_ids": [one.info.run_id], "metric_key": "y", "max_results": 50,
            "start_step": 0, "end_step": 9_999}).json()
    steps = sorted({m["step"] for m in answer["metrics"]})
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 9_999
    assert {m["run_id"] for m in answer["metrics"]} == {one.info.run_id}


def test_artifacts_log_list_and_download_through_the_proxy(ml: LiveServer,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "deep" / "b.bin").write_bytes(bytes(range(256)) * 100)
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    with mlflow.start_run() as active:
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(folder), artifact_path="results")
        mlflow.log_dict({"lr": 0.1}, "config/params.json")
    run_id, client = active.info.run_id, MlflowClient()
    top = {(f.path, f.is_dir) for f in client.list_artifacts(run_id)}
    assert top == {("notes.md", False), ("results", True), ("config", True)}
    inside = {(f.path, f.file_size) for f in client.list_artifacts(run_id, "results/deep")}
    assert inside == {("results/deep/b.bin", 25_600)}
    got = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="results",
                                                   dst_path=str(tmp_path / "back")))
    assert (got / "deep" / "b.bin").read_bytes() == (folder / "deep" / "b.bin").read_bytes()
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json") == {"lr": 0.1}
    catalog = {a.name: a.size for a in store_of(ml).list_artifacts(run_id)}
    assert catalog == {"notes.md": 7, "results/a.txt": 5, "results/deep/b.bin": 25_600,
                       "config/params.json": len(json.dumps({"lr": 0.1}, indent=2))}


def _three_runs() -> list[str]:
    mlflow.set_experiment("search")
    ids = []
    for number, (lr, acc, team) in enumerate([("0.1", 0.7, "a"), ("0.2", 0.9, "b"),
                                              ("0.3", 0.8, "a")]):
        with mlflow.start_run(run_name=f"r{number}", tags={"team": team}) as active:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("acc", acc)
            ids.append(active.info.run_id)
    return ids


def test_search_runs_filters_on_metrics_params_tags_and_attributes(ml: LiveServer) -> None:
    ids = _three_runs()

    def found(text: str) -> list[str]:
        frame = mlflow.search_runs(experiment_names=["search"], filter_string=text,
                                   order_by=["attributes.run_name ASC"])
        return list(frame["run_id"])

    assert found("metrics.acc > 0.75") == [ids[1], ids[2]]
    assert found("params.lr = '0.1'") == [ids[0]]
    assert found("tags.team = 'a' AND metrics.acc < 0.8") == [ids[0]]
    assert found("attributes.run_name LIKE 'r%' and attributes.status = 'FINISHED'") == ids
    assert found(f"attributes.run_id IN ('{ids[2]}', '{ids[0]}')") == [ids[0], ids[2]]
    assert found("tags.`mlflow.runName` ILIKE 'R1'") == [ids[1]]
    assert found("params.missing = 'x'") == []


def test_search_runs_orders_and_pages(ml: LiveServer) -> None:
    ids = _three_runs()
    experiment = id_of("search")
    client = MlflowClient()
    by_acc = client.search_runs([experiment], order_by=["metrics.acc DESC"])
    assert [r.info.run_id for r in by_acc] == [ids[1], ids[2], ids[0]]
    newest_first = client.search_runs([experiment])
    assert [r.info.run_id for r in newest_first] == ids[::-1]
    first = client.search_runs([experiment], max_results=2, order_by=["params.lr"])
    rest = client.search_runs([experiment], max_results=2, order_by=["params.lr"],
                              page_token=first.token)
    assert [r.info.run_id for r in [*first, *rest]] == ids and rest.token is None


def test_end_run_finishes_and_an_exception_in_the_block_fails_the_run(ml: LiveServer) -> None:
    with mlflow.start_run() as good:
        pass
    with pytest.raises(RuntimeError), mlflow.start_run() as bad:
        raise RuntimeError("diverged")
    mlflow.start_run()
    killed = mlflow.active_run().info.run_id
    mlflow.end_run(status="KILLED")
    client = MlflowClient()
    assert client.get_run(good.info.run_id).info.status == "FINISHED"
    assert client.get_run(bad.info.run_id).info.status == "FAILED"
    assert client.get_run(killed).info.status == "KILLED"
    store = store_of(ml)
    assert [store.get_run(r).status.value for r in (good.info.run_id, bad.info.run_id,
                                                    killed)] == ["succeeded", "failed",
                                                                 "canceled"]


def test_delete_and_restore_a_run(ml: LiveServer) -> None:
    with mlflow.start_run() as active:
        pass
    client, run_id = MlflowClient(), active.info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs(["0"]) == []
    deleted = client.search_runs(["0"], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [run_id]
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run_id, "late", 1.0)
    assert refused.value.error_code == "INVALID_STATE"
    client.restore_run(run_id)
    assert [r.info.run_id for r in client.search_runs(["0"])] == [run_id]
    assert store_of(ml).get_run(run_id).status.value == "succeeded"  # (still in the store)


def test_delete_and_restore_an_experiment_with_its_runs(ml: LiveServer) -> None:
    experiment = mlflow.set_experiment("old")
    with mlflow.start_run() as active:
        pass
    client = MlflowClient()
    client.delete_experiment(experiment.experiment_id)
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"
    assert "old" not in {e.name for e in client.search_experiments()}
    assert client.get_run(active.info.run_id).info.lifecycle_stage == "deleted"
    with pytest.raises(MlflowException):
        client.create_run(experiment.experiment_id)
    client.restore_experiment(experiment.experiment_id)
    assert client.get_run(active.info.run_id).info.lifecycle_stage == "active"
    client.rename_experiment(experiment.experiment_id, "renamed")
    assert id_of("renamed") == experiment.experiment_id
    assert store_of(ml).get_run(active.info.run_id).folder == "/renamed"


def test_a_run_logged_with_runyards_run_is_found_by_search_runs(ml: LiveServer) -> None:
    from runyard import Run

    with Run(ml.store_url, heartbeat_interval=None, resources_interval=None, gpu=False,
             capture_code=False) as run:
        run.init(name="native", folder="/native", tags=["ours"], metadata={"lab": "b2"})
        run.log_metrics({"score": 0.25})
    frame = mlflow.search_runs(experiment_names=["native"], filter_string="metrics.score < 1")
    assert list(frame["run_id"]) == [run.id]
    found = MlflowClient().get_run(run.id)
    assert found.info.run_name == "native" and found.info.status == "FINISHED"
    assert found.data.tags["lab"] == "b2" and found.data.tags["ours"] == ""


def test_an_mlflow_run_shows_in_runyard_run_list_and_run_metrics(ml: LiveServer) -> None:
    mlflow.set_experiment("shown")
    with mlflow.start_run(run_name="visible") as active:
        mlflow.log_metrics({"loss": 0.5}, step=3)
    listed = json.loads(runyard_cli(ml, "run", "list", "--json"))
    assert [(r["id"], r["name"], r["folder"], r["status"]) for r in listed] == \
        [(active.info.run_id, "visible", "/shown", "succeeded")]
    rows = runyard_cli(ml, "run", "metrics", active.info.run_id).splitlines()
    assert rows[0] == "name,step,value,time" and rows[1].startswith("loss,3,0.5,")
    assert "mlflow-experiment" not in runyard_cli(ml, "codespec", "list")  # (kept hidden)


def test_log_input_works_and_registry_calls_fail_at_once_without_retrying(
        ml: LiveServer) -> None:
    import pandas as pd

    with mlflow.start_run():
        dataset = mlflow.data.from_pandas(pd.DataFrame({"x": [1.0, 2.0]}), name="tiny")
        mlflow.log_input(dataset, context="training")
    with pytest.raises(MlflowException) as refused:
        MlflowClient().create_registered_model("model-a")
    assert refused.value.error_code == "ENDPOINT_NOT_FOUND"


def test_a_read_only_token_searches_but_cannot_log(ml: LiveServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with mlflow.start_run() as active:
        pass
    use(ml, monkeypatch, ml.read_token)
    client = MlflowClient()
    assert [r.info.run_id for r in client.search_runs(["0"])] == [active.info.run_id]
    with pytest.raises(MlflowException) as refused:
        client.log_metric(active.info.run_id, "x", 1.0)
    assert refused.value.error_code == "PERMISSION_DENIED"


def test_without_a_token_the_client_is_refused(ml: LiveServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    use(ml, monkeypatch, None)
    with pytest.raises(MlflowException) as refused:
        MlflowClient().search_experiments()
    assert refused.value.error_code == "UNAUTHENTICATED"


def test_experiment_ids_are_the_same_after_a_restart_and_across_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite://{tmp_path}/store/runyard.db"
    with running(url, tmp_path / "one", workers=2) as server:
        use(server, monkeypatch, server.token)
        ids = [MlflowClient().create_experiment(f"e{n}") for n in range(6)]
        assert len(set(ids)) == 6
        seen = {id_of(f"e{n}") for n in range(6) for _ in range(3)}  # (either worker)
        assert seen == set(ids)
        tokens = server.tokens
    again = LiveServer(url, free_port(), tmp_path / "again.log")  # the same store, restarted
    again.tokens = tokens
    again.start()
    try:
        use(again, monkeypatch, again.token)
        assert [id_of(f"e{n}") for n in range(6)] == ids
    finally:
        again.stop()


@pytest.mark.parametrize("kind", ["file", "chunked", "sqlite", "postgresql"])
def test_every_shared_backend_serves_the_client_with_two_workers(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    store_url = backend_url(kind, tmp_path, request)  # (memory:// lives in one process)
    with running(store_url, tmp_path / "server", workers=2) as server:
        use(server, monkeypatch, server.token)
        mlflow.set_experiment(experiment_id="0")
        ids = {}
        for name in ("alpha", "beta/gamma"):
            ids[name] = mlflow.set_experiment(name).experiment_id
            with mlflow.start_run(run_name=f"{name}-run") as active:
                mlflow.log_params({"p": name})
                mlflow.log_metrics({"m": 1.0, "n": float("nan")}, step=2)
                mlflow.log_dict({"k": name}, "d.json")
        assert len(set(ids.values())) == 2
        frame = mlflow.search_runs(experiment_names=["beta/gamma"],
                                   filter_string="params.p = 'beta/gamma' and metrics.m = 1")
        assert list(frame["run_id"]) == [active.info.run_id]
        assert mlflow.artifacts.load_dict(f"runs:/{active.info.run_id}/d.json") == \
            {"k": "beta/gamma"}
        assert {id_of(name) for name in ids for _ in range(4)} == set(ids.values())
        assert store_of(server).get_run(active.info.run_id).folder == "/beta/gamma"


def test_runs_may_share_a_name_and_be_renamed(ml: LiveServer) -> None:
    with mlflow.start_run(run_name="same") as one, mlflow.start_run(run_name="same",
                                                                    nested=True) as two:
        pass
    client = MlflowClient()
    assert {client.get_run(r.info.run_id).info.run_name for r in (one, two)} == {"same"}
    client.update_run(two.info.run_id, name="better name")
    assert client.get_run(two.info.run_id).info.run_name == "better name"
    assert store_of(ml).get_run(two.info.run_id).name == "better-name"


def test_one_experiment_wins_when_many_create_the_same_name_at_once(ml: LiveServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> str:
        with httpx.Client(base_url=ml.url, headers=ml.headers(), timeout=60) as http:
            answer = http.post("/api/2.0/mlflow/experiments/create", json={"name": "race"})
            return answer.json().get("experiment_id") or answer.json()["error_code"]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    winners = [o for o in outcomes if o != "RESOURCE_ALREADY_EXISTS"]
    assert len(winners) == 1 and id_of("race") == winners[0]
    assert [e.name for e in MlflowClient().search_experiments()].count("race") == 1
