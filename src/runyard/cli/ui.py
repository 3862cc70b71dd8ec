"""``runyard ui``: the dashboard of the configured store, on this machine, for this user.

It serves the store (``--store``, else the configured one) on 127.0.0.1 with a fresh
read-write token named ``ui-<time>-<pid>``, prints a login link (``/login?token=…``, which sets
the token as the browser's cookie) on stdout and opens it in a browser when one is available
and stdin is a terminal. The token lives only as long as the command: it is revoked when the
server stops (^C, SIGTERM), so an old link opens nothing. Serving is ``runyard.server.serve``,
imported by name (the CLI and the server are sibling adapters), as ``runyard server`` does.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

import click

from runyard.cli import render
from runyard.cli.params import Count
from runyard.cli.state import open_ctx_store, store_option
from runyard.errors import ConfigError
from runyard.stores.location import parse_url

SERVE = "runyard.server.serve"


@click.command("ui")
@click.option("--port", type=Count(0, 65535), default=0, show_default=True,
              help="The port on 127.0.0.1 to serve on (0: any free one).")
@click.option("--no-browser", is_flag=True, help="Print the link only; open no browser.")
@store_option
@click.pass_context
def ui_cmd(ctx: click.Context, port: int, no_browser: bool) -> None:
    """Open the dashboard of the store in a browser (served on 127.0.0.1 until ^C)."""
    from runyard.core import tokens

    store = open_ctx_store(ctx)
    url = store.url
    check_servable(url)
    serve = importlib.import_module(SERVE)
    text, record = tokens.create(store, token_name())
    try:
        serve.serve(url, host="127.0.0.1", port=port, access_log=False,
                    announce=lambda base: announce(f"{base}/login?token={text}",
                                                   not no_browser))
    finally:
        tokens.revoke(store, record.name)
        render.info(f"dashboard stopped; token {record.name!r} revoked")


def token_name() -> str:
    """A name no other ``runyard ui`` takes: the time and this process."""
    return f"ui-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def check_servable(url: str) -> None:
    """Refuse stores the dashboard cannot serve from here, saying what to do instead."""
    scheme = parse_url(url).scheme
    if scheme in ("http", "https"):
        raise ConfigError(f"the store is a runyard server: open its own dashboard at "
                          f"{render.redact_url(url)}/ with a login link from its owner")
    if scheme == "memory":
        raise ConfigError("a memory:// store lives in one process and holds nothing to show: "
                          "use --store with a sqlite://, file://, chunked:// or postgresql:// "
                          "store")


def announce(link: str, browse: bool) -> None:
    """Print the link (stdout: a script may read it) and open it when someone is there."""
    click.echo(link)
    render.info("the dashboard is served until ^C; the link works until then")
    if browse and sys.stdin.isatty():
        open_browser(link)


def open_browser(link: str) -> None:
    import webbrowser

    try:
        webbrowser.get().open(link)
    except webbrowser.Error:
        render.info("no browser found here: open the link above in one")
