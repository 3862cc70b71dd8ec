"""A chart of 1,000,000 points in Chromium, timed with the Performance API (issue 14).

Budgets: first paint <= 500 ms after the page asks for it; zoom <= 200 ms.

A tracked run with one metric of 1,000,000 points is served by a real ``runyard server``
process (SQLite store); headless Chromium opens its run page. The chart marks
``chart-ask:loss`` when it asks the server for the series (M4 cut at its pixel width),
``chart-paint:loss`` when uPlot has drawn it and ``chart-zoom:loss`` when a drag-select ends.
Figures, each the median (and worst) of REPEATS:
  * ask -> paint: the chart's own request, decode and draw;
  * open -> paint: from setting ``location.hash`` to the run page in the loaded app (the run,
    its metric summary, then the chart) to the chart drawn: what a user who clicks a run waits;
  * zoom -> paint: from the end of a drag-select (20% of the x range) to the zoomed range
    fetched again at full detail and drawn.
Baseline, same run: the browser fetching the raw series (``GET …/metrics?name=loss``, all
1,000,000 points) and parsing it, without drawing: what a chart without server-side
downsampling would pay before it could even start to draw.
Run: ``.venv/bin/python benchmarks/bench_chart.py``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from dashboard_run_helpers import (  # noqa: E402
    MILLION,
    build_web,
    chromium,
    new_page,
    seed_tracked,
)
from runyard.core.context import open_context  # noqa: E402
from server_helpers import server_process, token  # noqa: E402

REPEATS = 7
CHART = '.metric-chart[data-metric="loss"]'


def wait(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the chart did not get there in time")
        time.sleep(0.005)


def marks(page: Any) -> dict[str, list[float]]:
    found: dict[str, list[float]] = page.evaluate(
        "() => { const m = {}; for (const e of performance.getEntriesByType('mark'))"
        " (m[e.name] ??= []).push(e.startTime); return m; }")
    return found


def after(times: list[float], start: float) -> float:
    return min(t for t in times if t >= start) - start


def open_once(page: Any, base: str, run_id: str) -> tuple[float, float]:
    page.goto(f"{base}/#/")
    page.wait_for_selector('main.list[data-state="ready"]')  # (it rewrites the hash once)
    opened = float(page.evaluate(f"() => {{ const t = performance.now();"
                                 f" location.hash = '#/runs/{run_id}'; return t; }}"))
    try:
        page.wait_for_selector(f'{CHART}[data-state="ready"]')
    except Exception:
        page.screenshot(path="/tmp/bench_chart_failed.png")
        print("page:", page.url, page.errors, page.locator("body").inner_text()[:400])
        raise
    m = marks(page)
    # the first paint (a later resize may ask and draw again)
    ask = min(t for t in m["chart-ask:loss"] if t >= opened)
    return after(m["chart-paint:loss"], ask), after(m["chart-paint:loss"], opened)


def zoom_once(page: Any, at: float) -> float:
    chart = page.locator(CHART)
    before = chart.get_attribute("data-xmin")
    box = chart.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * at, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * (at + 0.2), y, steps=4)
    page.mouse.up()
    wait(lambda: chart.get_attribute("data-xmin") != before)
    m = marks(page)
    zoom = max(m["chart-zoom:loss"])
    return after(m["chart-paint:loss"], zoom)


RAW = """async ([id, n]) => {
  const t = performance.now();
  const a = await fetch(`/api/v1/runs/${id}/metrics?name=loss`, {credentials: 'same-origin'});
  const doc = await a.json();
  if (doc.values.length !== n) throw new Error('short');
  return performance.now() - t;
}"""


def raw_fetch(page: Any, run_id: str) -> float:
    return float(page.evaluate(RAW, [run_id, MILLION]))


def report(label: str, values: list[float], budget: float | None) -> None:
    verdict = "" if budget is None else (" ok" if statistics.median(values) <= budget
                                          else " OVER BUDGET")
    limit = "" if budget is None else f" (budget {budget:.0f} ms)"
    print(f"{label:<44} median {statistics.median(values):7.1f} ms  worst {max(values):7.1f} ms"
          f"{limit}{verdict}")


def main() -> None:
    build_web()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/runyard.db"
        context = open_context(url)
        run_id = seed_tracked(context, MILLION)
        secret = token(context.store)
        with server_process(url, "--no-access-log") as server, chromium() as browser:
            page = new_page(browser)
            page.goto(f"{server.base}/login?token={secret}&next=/")
            asks: list[float] = []
            opens: list[float] = []
            zooms: list[float] = []
            raws: list[float] = []
            for i in range(REPEATS + 1):  # the first warms the server and the browser
                ask, opened = open_once(page, server.base, run_id)
                zoom = zoom_once(page, 0.1 + 0.1 * (i % 5))
                raw = raw_fetch(page, run_id)
                if i:
                    for into, value in zip((asks, opens, zooms, raws), (ask, opened, zoom, raw),
                                           strict=True):
                        into.append(value)
            points = page.locator(CHART).get_attribute("data-points")
            errors = list(page.errors)
    print(f"chart of {MILLION:,} points, drawn from at most {points} points per draw, "
          f"{REPEATS} repeats")
    report("first paint: chart asks -> painted", asks, 500)
    report("first paint: run page opened -> painted", opens, 500)
    report("zoom: drag ends -> range re-fetched, painted", zooms, 200)
    report("baseline: raw 1M points fetched + parsed", raws, None)
    if errors:
        print("console errors:", errors)


if __name__ == "__main__":
    main()
