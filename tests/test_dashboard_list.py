"""The runs list and the comparison of the dashboard, in real headless Chromium.

One live server (a real uvicorn on 127.0.0.1 over a SQLite store, ``dashboard_run_helpers``)
holds runs of every kind; the browser logs in through the login link and uses the list as a
person would: filters, the folder tree, the keyboard, a run that appears while the page is
open, rename and delete from a row, and two runs compared. Every test checks that Chromium
logged no console error; screenshots go to the test's tmp_path and test-output/screenshots/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")

from dashboard_list_helpers import (
    WAIT,
    fresh_list,
    logged_in_page,
    names,
    ready,
    served_store,
    shot,
)
from dashboard_run_helpers import CHROMIUM
from runyard.core.context import StoreContext
from runyard.core.runs import create_run
from runyard.errors import RunNotFound
from runyard.model import Kind, Status

if not Path(CHROMIUM).exists():
    pytest.skip("needs /usr/bin/chromium (scripts/system-deps.sh installs it)",
                allow_module_level=True)


SEEDS = [  # name, kind, status, folder, tags, parameters, loss (a metric) or None
    ("alpha-sweep", Kind.TRACKED, Status.SUCCEEDED, "/proj/vision", {"baseline"},
     {"lr": 0.1, "batch": 32, "optimizer": "sgd"}, 1.0),
    ("beta-sweep", Kind.TRACKED, Status.FAILED, "/proj/vision", {"sweep"},
     {"lr": 0.01, "batch": 32, "optimizer": "adam"}, 2.0),
    ("gamma-flow", Kind.WORKFLOW, Status.RUNNING, "/proj/etl", {"nightly"}, {}, None),
    ("delta-cmd", Kind.COMMAND, Status.SUCCEEDED, "/ops", {"nightly"}, {}, None),
    ("epsilon-rec", Kind.RECORDED, Status.SUCCEEDED, "/proj/etl", set(), {}, None),
    ("zeta-scratch", Kind.TRACKED, Status.CANCELED, "/scratch", set(), {}, None),
    ("eta-scratch", Kind.TRACKED, Status.CANCELED, "/scratch", set(), {}, None),
]


@dataclass
class Board:
    """The served store: its URL, a token, the store context and the seeded runs by name."""

    base: str
    token: str
    context: StoreContext
    runs: dict[str, str] = field(default_factory=dict)


def seed(board: Board) -> None:
    store = board.context.store
    for name, kind, status, folder, tags, params, loss in SEEDS:
        start = Status.CREATED if status is Status.CANCELED else Status.RUNNING
        run = create_run(store, name=name, kind=kind, status=start, folder=folder,
                         tags=tags, parameters=params, metadata={"owner": name[:4]})
        if loss is not None:
            store.append_metric_columns(run.id, ["loss"] * 50,
                                        [loss / (i + 1) for i in range(50)],
                                        list(range(50)), [time.time()] * 50)
        if status is not start:
            store.update_status(run.id, status)
        board.runs[name] = run.id


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    with served_store(tmp_path_factory.mktemp("dashboard-list")) as (base, token_text, context):
        found = Board(base, token_text, context)
        seed(found)
        yield found


@pytest.fixture(scope="module")
def browser_page(board: Board) -> Iterator[Any]:
    """One Chromium page for the module, logged in through the login link."""
    with logged_in_page(board.base, board.token) as page:
        yield page


@pytest.fixture
def page(browser_page: Any, board: Board) -> Iterator[Any]:
    """The logged-in page on a fresh list; no console error may appear during the test."""
    yield from fresh_list(browser_page, board.base)


def wait_names(page: Any, expected: set[str]) -> None:
    """Wait until the rows show exactly ``expected``."""
    deadline = time.monotonic() + WAIT / 1000
    while set(names(page)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert set(names(page)) == expected


def test_list_shows_runs_of_every_kind_with_their_fields(page: Any, tmp_path: Path) -> None:
    wait_names(page, {s[0] for s in SEEDS})
    kinds = set(page.locator("table.runs tbody td.kind").all_inner_texts())
    assert kinds == {"tracked", "workflow", "command", "recorded"}
    row = page.locator("tr.run", has_text="gamma-flow")
    assert "running" in row.inner_text() and "/proj/etl" in row.inner_text()
    assert "nightly" in row.locator("td.tags").inner_text()
    assert page.locator(".count").inner_text().startswith(f"{len(SEEDS)} of {len(SEEDS)}")
    shot(page, tmp_path, "list")


def test_filters_by_text_status_kind_tag_and_folder(page: Any, tmp_path: Path) -> None:
    page.fill("input[name=q]", "sweep")
    wait_names(page, {"alpha-sweep", "beta-sweep"})
    page.check("input[name=status][value=failed]")
    wait_names(page, {"beta-sweep"})
    page.fill("input[name=q]", "")
    page.uncheck("input[name=status][value=failed]")
    page.select_option("select[name=kind]", "command")
    wait_names(page, {"delta-cmd"})
    page.select_option("select[name=kind]", "")
    page.fill("input[name=tag]", "nightly")
    page.press("input[name=tag]", "Enter")
    wait_names(page, {"gamma-flow", "delta-cmd"})
    shot(page, tmp_path, "list-filtered")
    page.fill("input[name=tag]", "")
    page.press("input[name=tag]", "Enter")
    page.click("nav.folders [role=treeitem]:has-text('etl')")
    wait_names(page, {"gamma-flow", "epsilon-rec"})
    assert "folder=%2Fproj%2Fetl" in page.url  # the filter is in the link
    page.reload()
    wait_names(page, {"gamma-flow", "epsilon-rec"})


def test_keyboard_moves_through_rows_and_opens_a_run(page: Any, board: Board) -> None:
    page.locator("table.runs tbody tr").first.focus()
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.dataset.id")
    assert focused == page.locator("table.runs tbody tr").nth(2).get_attribute("data-id")
    page.keyboard.press("x")
    assert page.locator("tr.run.selected").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/#/runs/{focused}", timeout=WAIT)


def test_a_new_run_and_a_status_change_appear_without_reload(page: Any, board: Board,
                                                              tmp_path: Path) -> None:
    page.wait_for_selector(".live.on", timeout=WAIT)
    store = board.context.store
    run = create_run(store, name="theta-live", kind=Kind.COMMAND, status=Status.RUNNING,
                     folder="/live")
    row = page.locator("tr.run", has_text="theta-live")
    row.wait_for(timeout=WAIT)
    assert "running" in row.locator(".badge").inner_text()
    store.update_status(run.id, Status.SUCCEEDED)
    page.wait_for_function("() => [...document.querySelectorAll('tr.run')].some(r => "
                           "r.innerText.includes('theta-live') && "
                           "r.querySelector('.badge').innerText === 'succeeded')", timeout=WAIT)
    shot(page, tmp_path, "list-live")
    store.delete_run(run.id)
    row.wait_for(state="detached", timeout=WAIT)


def test_rename_and_delete_from_a_row(page: Any, board: Board) -> None:
    store = board.context.store
    row = page.locator("tr.run", has_text="zeta-scratch")
    row.get_by_role("button", name="Rename zeta-scratch").click()
    box = page.get_by_label("New name for zeta-scratch")
    box.fill("zeta-renamed")
    box.press("Enter")
    page.locator("tr.run td.name a", has_text="zeta-renamed").wait_for(timeout=WAIT)
    assert store.get_run(board.runs["zeta-scratch"]).name == "zeta-renamed"
    row = page.locator("tr.run", has_text="eta-scratch")
    row.get_by_role("button", name="Delete eta-scratch").click()
    row.get_by_role("button", name="yes").click()
    row.wait_for(state="detached", timeout=WAIT)
    with pytest.raises(RunNotFound):
        store.get_run(board.runs["eta-scratch"])


def test_a_refused_rename_says_why_and_keeps_the_name(page: Any, board: Board) -> None:
    row = page.locator("tr.run", has_text="alpha-sweep")
    row.get_by_role("button", name="Rename alpha-sweep").click()
    box = page.get_by_label("New name for alpha-sweep")
    box.fill("beta-sweep")
    box.press("Enter")
    message = page.locator(".message.error")
    message.wait_for(timeout=WAIT)
    assert "beta-sweep" in message.inner_text()
    assert board.context.store.get_run(board.runs["alpha-sweep"]).name == "alpha-sweep"
    assert "alpha-sweep" in names(page)
    # Chromium logs the refused POST (409) as a failed load: that one line is expected
    assert all("409" in line for line in page.errors)
    page.errors.clear()


def test_compare_two_runs_overlays_metrics_and_marks_differences(page: Any, board: Board,
                                                                 tmp_path: Path) -> None:
    for name in ("alpha-sweep", "beta-sweep"):
        page.locator("tr.run", has_text=name).locator("input[type=checkbox]").check()
    page.get_by_role("button", name="Compare 2").click()
    page.wait_for_selector("main.compare[data-state=ready]", timeout=WAIT)
    params = page.locator("section[aria-label=Parameters] table.compare")
    assert params.locator("tr.differs th").all_inner_texts() == ["lr", "optimizer"]
    assert "batch" in params.locator("tr:not(.differs)").all_inner_texts()[-1]
    chart = page.locator("section[aria-label='Metric loss']")
    chart.locator("canvas").first.wait_for(timeout=WAIT)
    shot(page, tmp_path, "compare")


def test_chosen_parameter_and_metric_columns_show_their_values(page: Any) -> None:
    page.click("details.columns summary")
    page.locator("details.columns label", has_text="lr").locator("input").check()
    page.fill("input[aria-label='Add a metric column']", "loss")
    page.press("input[aria-label='Add a metric column']", "Enter")
    row = page.locator("tr.run", has_text="beta-sweep")
    page.wait_for_function("() => [...document.querySelectorAll('tr.run')].some(r => "
                           "r.innerText.includes('beta-sweep') && r.innerText.includes('0.04'))",
                           timeout=WAIT)
    cells = row.locator("td.num").all_inner_texts()
    assert "0.01" in cells and "0.04" in cells  # lr, and loss's last value (2/50)
    headers = page.locator("table.runs thead th").all_inner_texts()
    assert "lr" in headers and "loss" in headers
    page.reload()  # the columns are kept
    ready(page)
    assert "loss" in page.locator("table.runs thead th").all_inner_texts()
    page.evaluate("() => localStorage.removeItem('runyard.columns')")


def test_theme_switches_between_dark_and_light(page: Any, tmp_path: Path) -> None:
    before = page.evaluate("document.documentElement.dataset.theme")
    page.get_by_role("button", name="Switch theme").click()
    after = page.evaluate("document.documentElement.dataset.theme")
    assert {before, after} == {"dark", "light"}
    shot(page, tmp_path, f"list-{after}")
    page.reload()
    ready(page)
    assert page.evaluate("document.documentElement.dataset.theme") == after
