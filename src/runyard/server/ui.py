"""The dashboard: the built web front end (``web/``), served at ``/`` behind the token.

``npm run build`` in ``web/`` writes ``index.html`` and content-hashed assets into
``runyard/server/static/`` (git-ignored, shipped in the wheel and sdist). Every page and asset
needs the ``runyard_token`` cookie (or a bearer token) that the open login link
``/login?token=…`` sets: without a usable one, ``/`` answers a small page saying how to get a
link — never the app — and an asset answers 401. The token is checked against the store on
every request (``runyard.server.auth.authorize``), so a revoked token locks the browser out at
once. Asset names are matched against the files the build wrote, never joined into a path.
"""

from __future__ import annotations

import html
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from runyard.errors import RunyardError, StoreError
from runyard.server.auth import authorize, carried

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".woff2": "font/woff2", ".png": "image/png"}
SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' "
               "'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'self'")
IMMUTABLE = "private, max-age=31536000, immutable"
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>runyard: sign in</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}}
code{{background:#8882;padding:0 .3em}}</style></head><body>
<h1>runyard</h1><p>{reason}</p>
<p>To open the dashboard, use a login link: run <code>runyard ui</code> on the machine that
holds the store (it prints a link and opens it), or ask whoever runs <code>runyard server</code>
for a token (<code>runyard server token create --name NAME</code>) and open
<code>/login?token=&lt;token&gt;</code> on this server.</p>
<form method="get" action="/login"><label>Token <input name="token" type="password"
autocomplete="off" required></label> <button>Sign in</button></form></body></html>
"""


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes (``/``, ``/index.html``, ``/assets/…``) to ``app``."""
    for path in ("/", "/index.html"):
        app.add_api_route(path, page, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/assets/{name}", asset, methods=["GET", "HEAD"],
                      include_in_schema=False)


async def refusal_of(request: Request) -> str | None:
    """Why the request may not see the dashboard (no, unknown or revoked token), or None."""
    store = request.app.state.context.store
    try:
        text = carried(request.headers.get("authorization"), request.headers.get("cookie"))
        await anyio.to_thread.run_sync(authorize, store, text, "GET")
    except StoreError as exc:
        return f"The store does not answer ({exc}); try again in a moment."
    except RunyardError as exc:
        return str(exc) if "revoked" in str(exc) else "You are not signed in."
    return None


async def page(request: Request) -> Response:
    """The app's page, or the login page (401) without a usable token."""
    reason = await refusal_of(request)
    if reason is not None:
        return HTMLResponse(LOGIN_PAGE.format(reason=html.escape(reason)), 401,
                            headers={**SECURITY, "Cache-Control": "no-store"})
    index = STATIC / "index.html"
    headers = {**SECURITY, "Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY}
    if not index.is_file():
        return HTMLResponse(
            "<!doctype html><title>runyard</title><p>The dashboard was not built: run "
            "<code>scripts/setup.sh</code> (or <code>npm ci &amp;&amp; npm run build</code> "
            "in <code>web/</code>), or install runyard from a wheel.</p>", 503, headers=headers)
    return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)


async def asset(request: Request, name: str) -> Response:
    """One built asset (a content-hashed name), with the token; 401 without, 404 unknown."""
    if await refusal_of(request) is not None:
        return PlainTextResponse("a token is needed: open the login link first", 401,
                                 headers=SECURITY)
    found = built_asset(name)
    if found is None:
        return PlainTextResponse(f"no asset {name!r}", 404, headers=SECURITY)
    return FileResponse(found, media_type=TYPES[found.suffix],
                        headers={**SECURITY, "Cache-Control": IMMUTABLE})


def built_asset(name: str) -> Path | None:
    """The built file called ``name`` (one of the files in ``static/assets``), or None."""
    folder = STATIC / "assets"
    if not folder.is_dir() or Path(name).suffix not in TYPES:
        return None
    for entry in folder.iterdir():
        if entry.name == name and entry.is_file() and not entry.is_symlink():
            return entry
    return None
