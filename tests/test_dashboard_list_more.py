"""The runs list over more than a page of runs, in real headless Chromium: the folder tree
with its counts, sorting on the server across pages, and the live list beyond the newest.

A store of its own (a real uvicorn on 127.0.0.1 over SQLite): one old running run, then more
than 200 runs created after it across nested folders with a numeric parameter (some without
it), then one fresh running run. The browser uses the list as a person would: the tree by
mouse and keyboard, a column's header to sort (both ways, paging on), "Load more" down to the
old run while it ends elsewhere. Console errors fail the test; screenshots go to the test's
tmp_path and test-output/screenshots/ as in ``test_dashboard_list``.
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
from runyard.model import Kind, Status

if not Path(CHROMIUM).exists():
    pytest.skip("needs /usr/bin/chromium (scripts/system-deps.sh installs it)",
                allow_module_level=True)

MANY = 230  # runs created after the old running one: beyond the 200 the stream calls newest
FOLDERS = ["/", "/team-a", "/team-a/exp-1", "/team-a/exp-2", "/team-a/exp-2/sub", "/team-b"]


@dataclass
class Board:
    base: str
    token: str
    context: StoreContext
    ids: dict[str, str] = field(default_factory=dict)  # name -> id
    lr: dict[str, float] = field(default_factory=dict)  # name -> its parameter, if it has one
    folder: dict[str, str] = field(default_factory=dict)  # name -> its folder


def add(board: Board, name: str, folder: str, status: Status, **params: Any) -> None:
    store = board.context.store
    run = create_run(store, name=name, kind=Kind.TRACKED, status=Status.RUNNING,
                     folder=folder, parameters=params)
    if status is not Status.RUNNING:
        store.update_status(run.id, status)
    board.ids[name], board.folder[name] = run.id, folder
    if "lr" in params:
        board.lr[name] = params["lr"]


def seed(board: Board) -> None:
    add(board, "old-runner", "/deep/old", Status.RUNNING)
    for i in range(MANY):
        params = {} if i % 9 == 0 else {"lr": (i * 37 % 23 - 7) / (2 if i % 2 else 1)}
        add(board, f"run-{(i * 53) % MANY:03d}", FOLDERS[i % len(FOLDERS)],
            Status.SUCCEEDED if i % 3 else Status.FAILED, **params)
    add(board, "fresh-runner", "/team-b", Status.RUNNING)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    root = tmp_path_factory.mktemp("dashboard-list-more")
    with served_store(root) as (base, token_text, context):
        found = Board(base, token_text, context)
        seed(found)
        yield found


@pytest.fixture(scope="module")
def browser_page(board: Board) -> Iterator[Any]:
    with logged_in_page(board.base, board.token) as page:
        yield page


@pytest.fixture
def page(browser_page: Any, board: Board) -> Iterator[Any]:
    """A fresh list (a new document: no state left by the test before); no console error."""
    yield from fresh_list(browser_page, board.base)



def tree_item(page: Any, name: str) -> Any:
    return page.locator("nav.folders [role=treeitem]", has=page.locator(
        f".fname:text-is('{name}')"))


def count_of(page: Any, name: str) -> str:
    return str(tree_item(page, name).locator(".fcount").inner_text())


def wait_until(check: Any, what: str, shown: Any = None) -> None:
    """Wait for ``check``; on time out, fail saying ``what`` and what ``shown`` reads then."""
    deadline = time.monotonic() + WAIT / 1000
    while not check():
        assert time.monotonic() < deadline, what if shown is None else f"{what}: {shown()}"
        time.sleep(0.05)


def load_more(page: Any) -> None:
    """Click "Load more" without scrolling to it: scrolling there would bring the list's end
    near, and the list loads its next page by itself then (infinite scroll), so a click that
    scrolls races that load and may ask for a third page or find the button moved."""
    shown = len(names(page))
    page.locator("button.more:not([disabled])").dispatch_event("click")
    wait_until(lambda: len(names(page)) > shown, "the next page")


def test_folder_tree_counts_each_subtree_and_filters_by_click_and_keyboard(
        page: Any, board: Board, tmp_path: Path) -> None:
    def under(prefix: str) -> int:
        return sum(1 for f in board.folder.values()
                   if f == prefix or f.startswith(prefix + "/"))

    tree_item(page, "sub").wait_for(timeout=WAIT)
    assert count_of(page, "all folders") == str(len(board.ids))
    assert count_of(page, "team-a") == str(under("/team-a"))
    assert count_of(page, "exp-2") == str(under("/team-a/exp-2"))
    assert count_of(page, "sub") == str(under("/team-a/exp-2/sub"))
    shot(page, tmp_path, "list-folder-tree")
    tree_item(page, "exp-2").click()
    wanted = {n for n, f in board.folder.items() if f.startswith("/team-a/exp-2")}
    page.wait_for_function(f"() => document.querySelector('.count')?.innerText"
                           f".includes('of {len(wanted)} runs')", timeout=WAIT)
    assert set(names(page)) == wanted and "folder=%2Fteam-a%2Fexp-2" in page.url
    assert tree_item(page, "exp-2").get_attribute("aria-selected") == "true"
    # the keyboard: ← closes exp-2, ← again goes to team-a, Enter chooses it
    tree_item(page, "exp-2").focus()
    page.keyboard.press("ArrowLeft")
    assert tree_item(page, "exp-2").get_attribute("aria-expanded") == "false"
    assert tree_item(page, "sub").count() == 0
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_function("() => location.hash.includes('folder=%2Fteam-a&') || "
                           "location.hash.endsWith('folder=%2Fteam-a')", timeout=WAIT)


def test_folder_tree_follows_the_other_filters_and_a_new_folder(page: Any,
                                                                 board: Board) -> None:
    tree_item(page, "team-b").wait_for(timeout=WAIT)
    page.check("input[name=status][value=failed]")
    failed = sum(1 for i in range(MANY) if i % 3 == 0)  # (as seed() made them)
    wait_until(lambda: count_of(page, "all folders") == str(failed), "counts of failed runs")
    page.uncheck("input[name=status][value=failed]")
    tree_item(page, "team-b").wait_for(timeout=WAIT)
    add(board, "newcomer", "/brand/new", Status.RUNNING)
    tree_item(page, "new").wait_for(timeout=WAIT)  # the stream brought an unknown folder
    assert count_of(page, "brand") == "1"
    board.context.store.update_status(board.ids["newcomer"], Status.SUCCEEDED)


def expected_by(board: Board, key: Any, descending: bool) -> list[str]:
    """The names in the server's order: by ``key`` (None: no value, last both ways), ties by
    id in the same direction."""
    having = [n for n in board.ids if key(n) is not None]
    ordered = sorted(having, key=lambda n: (key(n), board.ids[n]), reverse=descending)
    missing = sorted((n for n in board.ids if key(n) is None),
                     key=lambda n: board.ids[n], reverse=descending)
    return ordered + missing


def sort_and_page(page: Any, header: str, expected: list[str], state: str) -> None:
    """Click ``header``'s sort button; see its arrow state and the first two pages."""
    page.locator(f"table.runs th[data-sort='{header}'] button.sort").click()
    th = page.locator(f"table.runs th[data-sort='{header}']")
    wait_until(lambda: th.get_attribute("aria-sort") == state, f"{header} {state}")
    wait_until(lambda: names(page) == expected[:100], f"first page by {header} {state}")
    load_more(page)

    def differences() -> str:
        now = names(page)
        pairs = zip(now, expected[:200], strict=False)
        wrong = [(i, n, e) for i, (n, e) in enumerate(pairs) if n != e]
        return f"{len(now)} rows shown, first differences {wrong[:3]}"

    wait_until(lambda: names(page)[:200] == expected[:200], f"second page by {header} {state}",
               differences)
    assert th.locator(".arrow").inner_text().strip() == ("▴" if state == "ascending" else "▾")


def test_sorting_by_name_pages_on_the_server_both_ways(page: Any, board: Board,
                                                       tmp_path: Path) -> None:
    sort_and_page(page, "name", expected_by(board, lambda n: n, False), "ascending")
    assert "sort=name" in page.url and "order=oldest" in page.url
    # sorted so, the stream updates the rows shown but puts no new run among them
    add(board, "aaa-newcomer", "/team-b", Status.SUCCEEDED)
    shown = "fresh-runner"  # running: followed by the stream
    assert shown in names(page)
    board.context.store.add_tags(board.ids[shown], ["marked"])
    row = page.locator("tr.run", has=page.locator(f"td.name a:text-is('{shown}')"))
    row.locator(".tag", has_text="marked").wait_for(timeout=WAIT)
    assert "aaa-newcomer" not in names(page)
    sort_and_page(page, "name", expected_by(board, lambda n: n, True), "descending")
    shot(page, tmp_path, "list-sorted-by-name")
    page.reload()  # the order is in the link
    ready(page)
    assert names(page) == expected_by(board, lambda n: n, True)[:100]


def test_sorting_by_a_parameter_column_pages_on_the_server_both_ways(page: Any,
                                                                     board: Board) -> None:
    page.click("details.columns summary")
    page.locator("details.columns label", has_text="lr").locator("input").check()
    page.click("details.columns summary")
    try:
        sort_and_page(page, "param:lr", expected_by(board, board.lr.get, False), "ascending")
        sort_and_page(page, "param:lr", expected_by(board, board.lr.get, True), "descending")
    finally:
        page.evaluate("() => localStorage.removeItem('runyard.columns')")


def test_metric_columns_say_why_they_do_not_sort(page: Any) -> None:
    page.click("details.columns summary")
    page.fill("input[aria-label='Add a metric column']", "loss")
    page.press("input[aria-label='Add a metric column']", "Enter")
    try:
        head = page.locator("table.runs thead th", has_text="loss")
        assert head.locator("button").count() == 0
        assert "metric" in (head.get_attribute("title") or "")
    finally:
        page.evaluate("() => localStorage.removeItem('runyard.columns')")


def test_an_old_running_run_held_below_the_newest_shows_its_end_live(
        page: Any, board: Board, tmp_path: Path) -> None:
    page.wait_for_selector(".live.on", timeout=WAIT)
    row = page.locator("tr.run", has=page.locator("td.name a:text-is('old-runner')"))
    while row.count() == 0:
        load_more(page)
        page.wait_for_selector("main.list[data-state=ready]", timeout=WAIT)
    assert row.locator(".badge").inner_text() == "running"
    board.context.store.update_status(board.ids["old-runner"], Status.FAILED, "exit 3")
    wait_until(lambda: row.locator(".badge").inner_text() == "failed", "the old run's end")
    shot(page, tmp_path, "list-old-run-ended")


def test_a_running_runs_duration_ticks_without_reload(page: Any) -> None:
    def duration(name: str) -> str:
        row = page.locator("tr.run", has=page.locator(f"td.name a:text-is('{name}')"))
        return str(row.locator("td.duration").inner_text())

    ended = next(n for n in names(page) if n.startswith("run-"))
    before, ended_before = duration("fresh-runner"), duration(ended)
    wait_until(lambda: duration("fresh-runner") != before, "the duration to change")
    after = duration("fresh-runner")
    wait_until(lambda: duration("fresh-runner") != after, "the duration to change again")
    assert duration(ended) == ended_before  # a finished run's duration stays
