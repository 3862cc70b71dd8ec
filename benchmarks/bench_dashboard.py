"""The dashboard's runs list over 100,000 runs, measured in headless Chromium, and its size.

Budgets (issue 14): the first rows drawn ≤ 300 ms after the list asks for them; a filter's rows
drawn ≤ 200 ms after the user changes it; the JavaScript shipped ≤ 150 KB gzipped. The times
come from the page's own Performance API marks (``web/src/list/useRuns.ts``: ``list-ask`` →
``list-rows``, ``list-change`` → ``list-rows``), median of REPEATS. Sorting by a column's
header (on the server, by name and by a parameter) is measured the same way, for information.
Baseline, the same work without a browser: the same ``GET /api/v1/runs`` calls through httpx,
so the figure shows what the page adds to the server's answer.

The store is a ``sqlite:`` store filled in one transaction with the store's own row format
(as ``bench_sqlite_list.py`` does) and served by ``runyard server`` (one worker).
Run: ``.venv/bin/python benchmarks/bench_dashboard.py`` (needs /usr/bin/chromium, playwright).
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from runyard.core import tokens
from runyard.model import Kind, RunRecord, Status, new_id
from runyard.stores.sqlite import SqliteStore
from runyard.stores.sqlschema import INSERT_RUN, INSERT_TAG, run_row

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "runyard" / "server" / "static"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
N = 100_000
REPEATS = 9
BUDGET_FIRST_MS, BUDGET_FILTER_MS, BUDGET_JS_KB = 300.0, 200.0, 150.0
KINDS = [Kind.TRACKED, Kind.WORKFLOW, Kind.COMMAND, Kind.RECORDED]
STATUSES = [Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.RUNNING]
# (what the user does, the query the page sends for it)
FILTERS: list[tuple[str, str, dict[str, Any]]] = [
    ("text '777'", "fill:input[name=q]:777", {"name": "777"}),
    ("status failed", "check:input[name=status][value=failed]", {"status": "failed"}),
    ("kind command", "select:select[name=kind]:command", {"kind": "command"}),
]
# Sorting by a column's header (server-side, offset paging): no budget of its own; measured
# as a filter is (``list-change`` -> ``list-rows``), each click turning the order round.
SORTS: list[tuple[str, str, dict[str, Any]]] = [
    ("name", "table.runs th[data-sort=name] button.sort", {"sort": "name", "order": "oldest"}),
    ("param:lr", "table.runs th[data-sort='param:lr'] button.sort",
     {"sort": "param:lr", "order": "oldest"}),
]


def build() -> None:
    if not (STATIC / "index.html").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT / "web", check=True)
        subprocess.run(["npm", "run", "build"], cwd=ROOT / "web", check=True)


def shipped_kb() -> tuple[float, float]:
    """The JavaScript shipped, raw and gzipped (level 9), in KB."""
    raw = zipped = 0
    for path in (STATIC / "assets").glob("*.js"):
        data = path.read_bytes()
        raw, zipped = raw + len(data), zipped + len(gzip.compress(data, 9))
    return raw / 1024, zipped / 1024


def make_runs(n: int) -> list[RunRecord]:
    start_ms = int(time.time() * 1000) - n * 10
    runs = []
    for i in range(n):
        created = (start_ms + i * 10) / 1000
        status = STATUSES[i % len(STATUSES)]
        runs.append(RunRecord(
            id=new_id(start_ms + i * 10), name=f"run-{i}", folder=f"/project-{i % 20}/exp-{i % 7}",
            kind=KINDS[i % len(KINDS)], status=status, created=created, started=created,
            ended=None if status is Status.RUNNING else created + 5 + i % 300,
            tags=frozenset({f"group-{i % 37}"} | ({"nightly"} if i % 10 == 0 else set())),
            parameters={"lr": 0.001 * (i % 7), "batch": 16 << (i % 4)}))
    return runs


def populate(db: Path) -> None:
    store = SqliteStore(db)
    runs = make_runs(N)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_RUN, [run_row(run, store.dialect) for run in runs])
        conn.executemany(INSERT_TAG, [(tag, run.id) for run in runs for tag in run.tags])
        conn.execute("COMMIT")
    finally:
        conn.close()
    store.close()


def start_server(url: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    process = subprocess.Popen([sys.executable, "-m", "runyard", "--store", url, "server",
                                "--port", "0", "--no-access-log"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    for _ in range(200):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return process, base


def measure(page: Any, name: str) -> float:
    """The newest Performance API measure called ``name``, in ms."""
    return float(page.evaluate(
        f"performance.getEntriesByName('{name}').slice(-1)[0].duration"))


def first_rows(page: Any, base: str) -> list[float]:
    times = []
    for i in range(REPEATS):
        page.goto(f"{base}/?load={i}#/")  # (a new query: a new document, not a hash change)
        page.wait_for_function("() => performance.getEntriesByName('list-first-rows').length > 0")
        times.append(measure(page, "list-first-rows"))
    return times


def act(page: Any, how: str, undo: bool = False) -> None:
    verb, selector, *value = how.split(":", 2)
    if verb == "click":  # a sort header: each click is a change (the other direction)
        page.click(how.split(":", 1)[1])
    elif verb == "fill":
        page.fill(selector, "" if undo else value[0])
    elif verb == "check":
        (page.uncheck if undo else page.check)(selector)
    else:
        page.select_option(selector, "" if undo else value[0])


def filter_times(page: Any, base: str, how: str) -> list[float]:
    page.goto(f"{base}/?filter={how}#/")
    page.wait_for_function("() => performance.getEntriesByName('list-first-rows').length > 0")
    times = []
    for i in range(REPEATS * 2):  # on, off, on, off …: each change is a filter to draw
        seen = page.evaluate("performance.getEntriesByName('list-filter').length")
        act(page, how, undo=i % 2 == 1)
        page.wait_for_function(f"() => performance.getEntriesByName('list-filter').length > {seen}")
        if i % 2 == 0:
            times.append(measure(page, "list-filter"))
    return times


def baseline_ms(base: str, token: str, query: dict[str, Any]) -> float:
    times = []
    with httpx.Client(base_url=f"{base}/api/v1",
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(REPEATS):
            started = time.perf_counter()
            client.get("/runs", params={**query, "limit": 100}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def verdict(value: float, budget: float) -> str:
    return "meets" if value <= budget else "MISSES"


def browse(base: str, token: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/login?token={token}")
        loads = first_rows(page, base)
        first = statistics.median(loads)
        plain = baseline_ms(base, token, {})
        print(f"first rows of {N:,} runs: {first:6.1f} ms (budget <= {BUDGET_FIRST_MS:.0f}: "
              f"{verdict(first, BUDGET_FIRST_MS)})   baseline GET /runs via httpx {plain:6.1f} ms")
        print(f"  each load: {', '.join(f'{t:.0f}' for t in loads)} ms")
        for label, how, query in FILTERS:
            took = statistics.median(filter_times(page, base, how))
            plain = baseline_ms(base, token, query)
            print(f"filter {label:<15} {took:6.1f} ms (budget <= {BUDGET_FILTER_MS:.0f}: "
                  f"{verdict(took, BUDGET_FILTER_MS)})   baseline GET /runs via httpx "
                  f"{plain:6.1f} ms")
        page.evaluate("localStorage.setItem('runyard.columns', JSON.stringify(['param:lr']))")
        for label, selector, query in SORTS:
            took = statistics.median(filter_times(page, base, f"click:{selector}"))
            plain = baseline_ms(base, token, query)
            print(f"sort by {label:<14} {took:6.1f} ms (no budget of its own)   baseline "
                  f"GET /runs via httpx {plain:6.1f} ms")
        browser.close()


def main() -> None:
    build()
    raw, zipped = shipped_kb()
    print(f"JavaScript shipped: {raw:.1f} KB, {zipped:.1f} KB gzipped "
          f"(budget <= {BUDGET_JS_KB:.0f} KB: {verdict(zipped, BUDGET_JS_KB)})")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runyard.db"
        started = time.perf_counter()
        populate(db)
        print(f"populated {N:,} runs in {time.perf_counter() - started:.1f} s "
              f"(median of {REPEATS} below)")
        store = SqliteStore(db)
        token, _ = tokens.create(store, "bench")
        store.close()
        process, base = start_server(f"sqlite:///{db}")
        try:
            browse(base, token)
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
