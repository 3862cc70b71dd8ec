"""The dashboard's pages and assets behind the token, and ``runyard ui``.

A real server (uvicorn on 127.0.0.1 over a SQLite store) serves the built dashboard: without a
usable token cookie ``/`` is a small login page (never the app) and every asset is 401; the
login link sets the cookie and leads to ``/``; a revoked token locks the browser out at once.
``runyard ui`` runs as a user runs it, a child process: it prints a link that works, and its
token is revoked when it stops.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboard_run_helpers import build_web
from runyard.core import tokens
from runyard.core.context import open_context
from server_helpers import Served, served, token

ASSET = re.compile(r'/assets/(main-[A-Za-z0-9]+\.(?:js|css))')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    build_web()
    root = tmp_path_factory.mktemp("ui")
    with served(open_context(f"sqlite:///{root}/runyard.db")) as found:
        yield found


def browser(base: str, token_text: str | None = None) -> httpx.Client:
    """A client that keeps cookies like a browser (the cookie set for ``token_text``)."""
    jar = {} if token_text is None else {"runyard_token": token_text}
    return httpx.Client(base_url=base, cookies=jar, timeout=30)


def assets_of(page: str) -> list[str]:
    found = ASSET.findall(page)
    assert found, "the app's page names no built asset"
    return found


def test_the_app_and_its_assets_need_the_token_cookie(server: Served) -> None:
    text = token(server.store)
    with browser(server.base, text) as signed_in, browser(server.base) as stranger:
        app = signed_in.get("/")
        assert app.status_code == 200 and 'id="app"' in app.text
        assert "frame-ancestors 'none'" in app.headers["content-security-policy"]
        names = assets_of(app.text)
        for name in names:
            assert signed_in.get(f"/assets/{name}").status_code == 200
            assert stranger.get(f"/assets/{name}").status_code == 401
        refused = stranger.get("/")
        assert refused.status_code == 401
        assert "runyard ui" in refused.text and "/assets/" not in refused.text
        assert stranger.get("/index.html").status_code == 401


def test_an_asset_is_served_with_its_type_and_kept_by_the_browser(server: Served) -> None:
    with browser(server.base, token(server.store)) as signed_in:
        for name in assets_of(signed_in.get("/").text):
            got = signed_in.get(f"/assets/{name}")
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            assert got.headers["content-type"].startswith(kind)
            assert "immutable" in got.headers["cache-control"]
            assert got.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", "..%2F..%2Fui.py", "index.html",
                                  "main.js%00.css", ".gitignore"])
def test_only_built_assets_are_served(server: Served, name: str) -> None:
    with browser(server.base, token(server.store)) as signed_in:
        assert signed_in.get(f"/assets/{name}").status_code == 404


def test_the_login_link_sets_the_cookie_and_leads_to_the_app(server: Served) -> None:
    text = token(server.store)
    with browser(server.base) as fresh:
        answer = fresh.get("/login", params={"token": text})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert "HttpOnly" in answer.headers["set-cookie"]
        assert fresh.get("/").status_code == 200
    with browser(server.base) as fresh:
        assert fresh.get("/login", params={"token": "ry_" + "x" * 43}).status_code == 401
        assert fresh.get("/").status_code == 401


def test_a_revoked_token_is_locked_out_and_told_why(server: Served) -> None:
    text, record = tokens.create(server.store, "to-revoke")
    with browser(server.base, text) as signed_in:
        name = assets_of(signed_in.get("/").text)[0]
        tokens.revoke(server.store, record.name)
        page = signed_in.get("/")
        assert page.status_code == 401 and "revoked" in page.text
        assert signed_in.get(f"/assets/{name}").status_code == 401


def test_a_read_only_token_may_see_the_dashboard(server: Served) -> None:
    with browser(server.base, token(server.store, read_only=True)) as reader:
        assert reader.get("/").status_code == 200


def ui_process(store_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "runyard", "--store", store_url, "ui"], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_runyard_ui_prints_a_working_link_and_revokes_its_token_at_exit(tmp_path: Path) -> None:
    build_web()
    url = f"sqlite:///{tmp_path}/runyard.db"
    process = ui_process(url)
    try:
        assert process.stdout is not None
        link = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?token=ry_[\w-]{43}", link), link
        with httpx.Client(follow_redirects=True, timeout=30) as user:
            assert 'id="app"' in user.get(link).text
            base = link.split("/login")[0]
            assert user.get(f"{base}/api/v1/runs").status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    found = open_context(url).store.list_tokens()
    assert len(found) == 1 and found[0].name.startswith("ui-")
    assert found[0].revoked is not None and not found[0].read_only


def test_runyard_ui_refuses_a_store_it_cannot_serve(tmp_path: Path) -> None:
    process = ui_process("memory://")
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert err.strip().startswith("error:") and "memory://" in err
