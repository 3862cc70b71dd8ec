"""The command line over tracked runs: ``run show``, ``run metrics``, ``sync``."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from runyard import Run
from tracking_helpers import FAST, cli, start_script


@pytest.fixture
def tracked(isolated: Path) -> tuple[str, str]:
    """A finished tracked run with tags, metadata, metrics (NaN too) and events, made outside
    any git repository."""
    url = f"sqlite://{isolated}/cli.db"
    with Run(url, **FAST) as run:
        run.init(name="shown-run", tags=["cli", "demo"], metadata={"lr": 0.1, "arch": "mlp"},
                 description="for the CLI")
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step,
                            time=100.0 + step)
        run.log_metrics({"loss": math.nan}, step=5, time=105.0)
        run.log_event("started training")
        run.log_event("loss went NaN", level="warning")
    return url, run.id


def test_run_show_has_tags_metadata_latest_metrics_and_events(
    tracked: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = tracked
    result = cli("--store", url, "run", "show", "shown-run", cwd=tmp_path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(line.startswith("status") and "succeeded" in line for line in lines)
    assert any(line.startswith("tags") and "cli, demo" in line for line in lines)
    assert any(line.split()[:2] == ["arch", "mlp"] for line in lines)
    acc = next(line.split() for line in lines if line.startswith("acc "))
    assert acc[:3] == ["acc", "5", "0.4"]  # name, count, latest value
    loss = next(line.split() for line in lines if line.startswith("loss "))
    assert loss[:4] == ["loss", "6", "NaN", "5"]
    assert "started training" in result.out and "warning: loss went NaN" in result.out
    assert any(line.strip().startswith("cpu_seconds") for line in lines)
    assert any(line.startswith("code") and "none" in line for line in lines)


def test_run_metrics_exports_csv_in_logging_order(tracked: tuple[str, str],
                                                  tmp_path: Path) -> None:
    url, run_id = tracked
    result = cli("--store", url, "run", "metrics", run_id, cwd=tmp_path)
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 11 and list(rows[0]) == ["name", "step", "value", "time"]
    loss = [r for r in rows if r["name"] == "loss"]
    assert [r["step"] for r in loss] == ["0", "1", "2", "3", "4", "5"]
    assert float(loss[2]["value"]) == 1.0 / 3 and loss[-1]["value"] == "nan"
    assert float(loss[0]["time"]) == 100.0


def test_run_metrics_exports_json_for_chosen_names(tracked: tuple[str, str],
                                                   tmp_path: Path) -> None:
    url, _ = tracked
    result = cli("--store", url, "run", "metrics", "shown-run", "--name", "loss",
                 "--format", "json", cwd=tmp_path)
    assert result.code == 0, result.err
    points = json.loads(result.out)
    assert [p["step"] for p in points] == list(range(6)) and points[-1]["value"] == "NaN"
    assert set(points[0]) == {"name", "step", "value", "time"}
    both = cli("--store", url, "run", "metrics", "shown-run", "--name", "loss", "--name", "acc",
               "--format", "json", cwd=tmp_path)
    assert len(json.loads(both.out)) == 11


def test_run_metrics_mistakes_give_one_line(tracked: tuple[str, str], tmp_path: Path) -> None:
    url, _ = tracked
    for args, words in [
        (("shown-run", "--name", "nope"), "has no metric 'nope'; it has: acc, loss"),
        (("no-such-run",), "no run with id or name 'no-such-run'"),
        (("shown-run", "--format", "xml"), "'xml' is not one of 'csv', 'json'"),
    ]:
        result = cli("--store", url, "run", "metrics", *args, cwd=tmp_path)
        assert result.code != 0 and words in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1


def test_an_empty_run_exports_an_empty_table(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/empty.db"
    Run(url, **FAST).init(name="empty").close()
    as_csv = cli("--store", url, "run", "metrics", "empty", cwd=tmp_path)
    as_json = cli("--store", url, "run", "metrics", "empty", "--format", "json", cwd=tmp_path)
    assert as_csv.out == "name,step,value,time\n" and json.loads(as_json.out) == []


def test_sync_uses_the_configured_store_by_default(tmp_path: Path) -> None:
    script = (
        "from runyard import Run\n"
        "with Run(heartbeat_interval=None, resources_interval=None) as run:\n"
        "    run.init(name='via-env', offline=True)\n"
        "    run.log_metrics({'x': 1.0})\n"
    )
    made = start_script(script, tmp_path)
    assert made.wait(timeout=120) == 0, made.communicate()[1]
    url = f"sqlite://{tmp_path}/configured.db"
    synced = cli("sync", "--json", cwd=tmp_path, RUNYARD_STORE=url)
    assert synced.code == 0, synced.err
    assert "synced 1 offline runs" in synced.err and "1 closed and removed" in synced.err
    report = json.loads(synced.out)
    assert report["destination"] == url and len(report["removed"]) == 1
    shown = cli("--store", url, "run", "show", "via-env", "--json", cwd=tmp_path)
    assert json.loads(shown.out)["metrics"]["x"]["count"] == 1

