"""The run page in real headless Chromium: every kind of run opens on one layout, a chart of a
million points draws and zooms, the logs of a running command run follow, artifacts download
and preview, and rename, tag, cancel and delete go through the server's rules. Every test
saves screenshots (under its tmp_path and test-output/screenshots/) and fails on any console
error of the page."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")
if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (scripts/system-deps.sh installs it)",
                allow_module_level=True)

from dashboard_run_helpers import (
    HELLO,
    MILLION,
    TICKER,
    Dashboard,
    add_points,
    chromium,
    dashboard,
    new_page,
    running_tracked,
    seed_recorded,
    seed_tracked,
    seed_workflow,
    shot,
)
from runyard.model import Status

LOSS = '.metric-chart[data-metric="loss"]'


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("dash")
    with dashboard(root) as served:
        ctx = served.context
        served.runs["tracked"] = seed_tracked(ctx)
        served.runs["workflow"] = seed_workflow(ctx)
        version, recorded, again = seed_recorded(ctx, root)
        served.runs.update(version=version, recorded=recorded, reproduction=again)
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    made = new_page(browser)
    yield made
    made.context.close()


def until(check: Any, timeout: float = 30.0) -> None:
    """Wait for ``check()`` to hold (the page's CSP forbids Playwright's string predicates)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the page did not get there in time"
        time.sleep(0.05)


def open_run(page: Any, dash: Dashboard, run_id: str) -> None:
    dash.login(page, f"/#/runs/{run_id}")
    page.wait_for_selector(f'.run-page[data-run="{run_id}"]')


def test_every_kind_of_run_opens_on_the_one_layout(page: Any, dash: Dashboard,
                                                   tmp_path: Path) -> None:
    for kind in ("tracked", "workflow", "recorded", "reproduction", "version"):
        run_id = dash.runs[kind]
        open_run(page, dash, run_id)
        for part in ("#fields", "#parameters", "#metadata", "#code", "#environment", "#logs"):
            assert page.locator(part).count() == 1, f"{kind}: no {part}"
        page.wait_for_load_state("networkidle")
        shot(page, tmp_path, f"run-{kind}")
    open_run(page, dash, dash.runs["workflow"])
    page.wait_for_selector("svg.dag .dag-node")
    assert page.locator("svg.dag .dag-node").count() == 4
    assert page.locator("svg.dag .dag-edge").count() == 3  # three add task runs into total
    assert page.locator(".timeline .tl-bar").count() == 4
    open_run(page, dash, dash.runs["reproduction"])
    page.wait_for_selector('#reproduce [data-identical="true"]')
    assert page.locator('#outputs [data-name="out/result.txt"]').count() == 1
    assert page.locator('#inputs [data-name="data/input.csv"]').count() == 1
    open_run(page, dash, dash.runs["version"])
    page.wait_for_selector("#version [data-run-link]")
    assert page.locator("#version [data-run-link]").count() == 2  # the run and its reproduction
    assert page.errors == []


def test_a_workflow_task_run_shows_its_attempts_arguments_output_and_logs(
        page: Any, dash: Dashboard, tmp_path: Path) -> None:
    open_run(page, dash, dash.runs["workflow"])
    page.click('svg.dag [data-node="add-2"]')
    task = page.locator("#task-run")
    task.wait_for()
    assert "Task run add-2" in task.inner_text()
    args = page.locator('table.kv[aria-label="arguments"]').inner_text()
    assert re.search(r"x\s+1", args) and re.search(r"y\s+1", args)
    assert re.search(r"output\s+2", page.locator('table.kv[aria-label="output"]').inner_text())
    until(lambda: task.locator(".logs").get_attribute("data-lines") == "1")
    assert "adding 1 and 1" in task.locator(".log-view").inner_text()
    shot(page, tmp_path, "workflow-task-run")
    assert page.errors == []


def test_a_chart_of_a_million_points_draws_a_few_per_pixel_and_zooms(
        page: Any, dash: Dashboard, tmp_path: Path) -> None:
    open_run(page, dash, dash.runs["tracked"])
    chart = page.locator(LOSS)
    page.wait_for_selector(f'{LOSS}[data-state="ready"]')
    assert "1,000,000 points" in chart.locator("figcaption").inner_text()
    width = chart.locator(".chart-box").bounding_box()["width"]
    drawn = int(chart.get_attribute("data-points"))
    assert 100 < drawn <= 4 * width + 8  # M4: at most four points per pixel column
    assert float(chart.get_attribute("data-ymax")) == 5.0  # the one-point spike is drawn
    shot(page, tmp_path, "chart-million")
    over = chart.locator(".u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.5, y)  # hover: the legend shows the values
    values = chart.locator(".u-legend .u-value")
    until(lambda: all(v not in ("", "--") for v in values.all_inner_texts()))
    step, loss = (float(v.replace(",", "")) for v in values.all_inner_texts())
    assert 400_000 < step < 600_000 and 0 < loss < 1
    page.mouse.move(over["x"] + over["width"] * 0.70, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.80, y, steps=5)
    page.mouse.up()
    until(lambda: float(chart.get_attribute("data-xmin")) > 600_000)
    low, high = float(chart.get_attribute("data-xmin")), float(chart.get_attribute("data-xmax"))
    assert 600_000 < low < high < 900_000
    caption = chart.locator("figcaption").inner_text()
    found = re.search(r"([\d,]+) points in range", caption)
    assert found is not None, caption
    shown = int(found.group(1).replace(",", ""))
    assert 0 < shown < MILLION  # the range was asked for again, not cut from what was drawn
    shot(page, tmp_path, "chart-million-zoomed")
    chart.get_by_role("button", name="reset zoom").click()
    until(lambda: "in range" not in chart.locator("figcaption").inner_text())
    chart.get_by_label("x axis of loss").select_option("time")
    until(lambda: float(chart.get_attribute("data-xmin")) > 1e9)  # seconds since the epoch
    chart.get_by_label("log scale of loss").check()
    chart.get_by_label("smoothing of loss").fill("0.9")
    until(lambda: float(chart.get_attribute("data-ymax")) < 5.0)  # smoothing flattens the spike
    assert page.errors == []


def test_the_chart_of_a_running_run_grows_live(page: Any, dash: Dashboard,
                                              tmp_path: Path) -> None:
    store = dash.context.store
    run_id = running_tracked(dash.context, "live-acc")
    open_run(page, dash, run_id)
    chart = page.locator('.metric-chart[data-metric="acc"]')
    until(lambda: chart.get_attribute("data-state") == "ready")
    assert chart.get_attribute("data-points") == "10"
    add_points(dash.context, run_id, "acc", range(10, 25))
    until(lambda: chart.get_attribute("data-points") == "25")  # no reload, no new fetch
    assert float(chart.get_attribute("data-xmax")) >= 24
    shot(page, tmp_path, "chart-live")
    store.update_status(run_id, Status.SUCCEEDED)
    page.wait_for_selector('.run-page[data-status="succeeded"]')
    assert page.errors == []


def test_the_logs_of_a_running_command_run_follow_and_it_can_be_canceled(
        page: Any, dash: Dashboard, tmp_path: Path) -> None:
    (tmp_path / "ticker.yml").write_text(TICKER)
    made = dash.runyard(tmp_path, "codespec", "create", "-f", "ticker.yml")
    assert made.returncode == 0, made.stderr
    created = dash.runyard(tmp_path, "run", "create", "-c", "ticker")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    open_run(page, dash, run_id)
    page.wait_for_selector('.run-page[data-status="running"]')
    logs = page.locator("#logs .logs")
    until(lambda: int(logs.get_attribute("data-lines")) >= 6)
    first = int(logs.get_attribute("data-lines"))
    until(lambda: int(logs.get_attribute("data-lines")) > first + 4)  # more came, live
    assert page.locator("#replicas [data-replica]").count() == 1
    page.get_by_label("search logs").fill("tick 3")
    until(lambda: all("tick 3" in t for t in page.locator("#logs .log-text").all_inner_texts()))
    page.get_by_label("search logs").fill("")
    page.get_by_label("stream of logs").select_option("stderr")
    until(lambda: all(t.startswith("warn")
                      for t in page.locator("#logs .log-text").all_inner_texts()))
    assert page.locator("#logs .log-text").count() > 0
    shot(page, tmp_path, "command-running-logs")
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_selector('.run-page[data-status="canceled"]', timeout=60_000)
    assert dash.context.store.get_run(run_id).status is Status.CANCELED
    replica = page.locator("#replicas [data-replica]")
    # the replica's ended attempt and its exit code (a process stopped mid-way may still exit
    # 0: the exit code is the process's own)
    until(lambda: replica.locator(".exit-code").inner_text() != "—")
    shot(page, tmp_path, "command-canceled")
    assert page.errors == []


def test_a_command_run_shows_its_buffers_and_its_replicas_exit_code(
        page: Any, dash: Dashboard, tmp_path: Path) -> None:
    (tmp_path / "hello.yml").write_text(HELLO)
    assert dash.runyard(tmp_path, "codespec", "create", "-f", "hello.yml").returncode == 0
    buffer = dash.runyard(tmp_path, "buffer", "create").stdout.strip()
    created = dash.runyard(tmp_path, "run", "create", "-c", "hello", "--buffer", f"input={buffer}")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    written = subprocess.run([sys.executable, "-m", "runyard", "buffer", "write", buffer],
                             input="Paul\n", text=True, capture_output=True, env=dash.cli_env())
    assert written.returncode == 0, written.stderr
    output = dash.context.store.get_run(run_id).parameters["buffers"]["output"]
    open_run(page, dash, run_id)
    page.wait_for_selector('.run-page[data-status="succeeded"]', timeout=60_000)
    buffers = page.locator('table.kv[aria-label="buffers"]').inner_text()
    assert re.search(rf"input input\s+{buffer}", buffers)
    assert re.search(rf"output output\s+{output}", buffers)
    replica = page.locator("#replicas [data-replica]")
    until(lambda: replica.locator(".exit-code").inner_text() == "0")
    shot(page, tmp_path, "command-buffers")
    assert page.errors == []


def test_artifacts_download_and_preview_as_text_table_and_image(
        page: Any, dash: Dashboard, tmp_path: Path) -> None:
    open_run(page, dash, dash.runs["tracked"])
    with page.expect_download() as got:
        page.get_by_label("download notes.txt").click()
    saved = tmp_path / "notes.txt"
    got.value.save_as(saved)
    assert saved.read_bytes() == b"hello from the artifact\nsecond line\n"
    page.get_by_label("preview notes.txt").click()
    page.locator(".preview-text").wait_for()
    assert "second line" in page.locator(".preview-text").inner_text()
    page.get_by_label("preview tables/results.csv").click()
    table = page.locator("table.csv")
    until(lambda: table.locator("th").all_inner_texts() == ["epoch", "loss", "acc"])
    assert table.locator("tbody tr").nth(1).locator("td").all_inner_texts() == ["2", "0.5", "0.7"]
    page.get_by_label("preview plots/red.png").click()
    page.locator(".preview-image").wait_for()
    until(lambda: page.locator(".preview-image").evaluate("img => img.naturalWidth") == 8)
    shot(page, tmp_path, "artifact-preview")
    assert page.errors == []


def test_rename_tag_and_delete_follow_the_servers_rules(page: Any, dash: Dashboard,
                                                        tmp_path: Path) -> None:
    store = dash.context.store
    run_id = seed_tracked(dash.context, points=1000, name="small-loss")
    page.on("dialog", lambda d: d.accept())
    open_run(page, dash, run_id)
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("new name").fill("glorious-elk-2")
    page.get_by_role("button", name="Save name").click()
    until(lambda: page.locator(".run-name").inner_text() == "glorious-elk-2")
    assert store.get_run(run_id).name == "glorious-elk-2"
    taken = store.get_run(dash.runs["workflow"]).name
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("new name").fill(taken)
    page.get_by_role("button", name="Save name").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert taken in alert.inner_text() and "\n" not in alert.inner_text().strip()
    page.get_by_role("button", name="Keep").click()
    page.get_by_label("new tag").fill("stage=review")
    page.get_by_role("button", name="Tag", exact=True).click()
    page.wait_for_selector('[aria-label="remove tag stage=review"]')
    assert "stage=review" in store.get_run(run_id).tags
    page.get_by_label("remove tag million").click()
    page.get_by_label("remove tag million").wait_for(state="detached")
    assert "million" not in store.get_run(run_id).tags
    page.get_by_role("button", name="Cancel run").is_disabled()  # a finished run cannot be
    shot(page, tmp_path, "run-renamed-tagged")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Run deleted").wait_for()
    assert [r for r in store.list_runs() if r.id == run_id] == []
    assert [e for e in page.errors if "409" not in e] == []  # the refused rename's 409 only
