"""What the dashboard's list tests share: a store served by a live uvicorn on 127.0.0.1 and
seeded once per module, one logged-in Chromium page per module (console errors collected), a
fresh list per test, and waits on the list's rows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashboard_run_helpers import ARGS, CHROMIUM, SHOTS, build_web
from runyard.core.context import StoreContext, open_context
from server_helpers import served, token

WAIT = 15_000  # ms a page may take to show what a test waits for


@contextlib.contextmanager
def served_store(root: Path) -> Iterator[tuple[str, str, StoreContext]]:
    """A SQLite store under ``root`` behind a live server (the web front end built first):
    the server's base URL, a token and the store context."""
    build_web()
    context = open_context(f"sqlite:///{root}/runyard.db")
    with served(context) as server:
        yield server.base, token(context.store), context


@contextlib.contextmanager
def logged_in_page(base: str, token_text: str) -> Iterator[Any]:
    """One Chromium page logged in through the login link; ``page.errors`` collects the
    console's errors and the page's uncaught ones."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page: Any = browser.new_page(viewport={"width": 1400, "height": 900})
        page.errors = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{base}/login?token={token_text}")
        try:
            yield page
        finally:
            browser.close()


def fresh_list(page: Any, base: str) -> Iterator[Any]:
    """The page on a new document of the list (no state left by the test before); after the
    test, no console error may have appeared. For a function-scoped fixture to yield from."""
    page.errors.clear()
    page.goto("about:blank")
    page.goto(f"{base}/#/")
    ready(page)
    yield page
    assert page.errors == []


def shot(page: Any, tmp: Path, name: str) -> Path:
    """A full-page screenshot in ``tmp`` and in test-output/screenshots/ (kept); that path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp / f"{name}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    return SHOTS / f"{name}.png"


def ready(page: Any) -> None:
    page.wait_for_selector("main.list[data-state=ready] table.runs tbody tr", timeout=WAIT)


def names(page: Any) -> list[str]:
    shown: list[str] = page.locator("table.runs tbody td.name a").all_inner_texts()
    return shown

