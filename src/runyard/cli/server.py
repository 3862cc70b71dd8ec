"""``runyard server``: serve a store over HTTP, and manage the tokens that may call it.

``runyard server [--host] [--port] [--workers]`` serves the store (``--store``, else the
configured one) until SIGTERM or ^C. ``runyard server token create|list|revoke`` keeps the
server's API tokens in that store; a token's text is printed once, at creation, on stdout.

The CLI and the server are sibling adapters (import-linter keeps them apart): tokens are made
by ``runyard.core.tokens``, and serving is ``runyard.server.serve``, imported by name here the
way every lazy command is, so ``runyard server token list`` never imports FastAPI.
"""

from __future__ import annotations

import importlib

import click

from runyard.cli import render
from runyard.cli.params import Count
from runyard.cli.state import open_ctx_store, store_option

SERVE = "runyard.server.serve"


@click.group("server", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=Count(0, 65535), default=8765, show_default=True,
              help="The port to listen on (0: any free one; the URL is printed).")
@click.option("--workers", type=Count(1, 256), default=1, show_default=True,
              help="Worker processes (more than 1 needs a sqlite:// or postgresql:// store).")
@click.option("--cors-origin", metavar="ORIGIN",
              help="Let pages of this one origin (https://host:port) call the API; "
                   "off by default.")
@click.option("--max-body", type=Count(1024), metavar="BYTES",
              help="The largest JSON request body accepted (default 64 MiB); blob and buffer "
                   "uploads are streamed and have no limit.")
@click.option("--no-access-log", is_flag=True, help="Do not log one JSON line per request.")
@store_option
@click.pass_context
def server_group(ctx: click.Context, host: str, port: int, workers: int,
                 cors_origin: str | None, max_body: int | None, no_access_log: bool) -> None:
    """Serve the store over HTTP (REST API, bearer tokens); manage its tokens."""
    if ctx.invoked_subcommand is not None:
        return
    serve = importlib.import_module(SERVE)
    store = open_ctx_store(ctx)
    url = store.url
    serve.check_workers(url, workers)
    usable = any(t.revoked is None for t in store.list_tokens())
    store.close()  # (each worker opens its own)

    def announce(base: str) -> None:  # once it listens
        click.echo(base)
        render.info(f"serving {render.redact_url(url)} at {base}/api/v1 with {workers} "
                    f"worker{'s' if workers > 1 else ''}; stop with ^C")
        if not usable:
            render.info("no token can call this server yet: make one with "
                        "`runyard server token create --name NAME`")

    serve.serve(url, host=host, port=port, workers=workers, cors_origin=cors_origin,
                max_body=max_body, access_log=not no_access_log, announce=announce)
    render.info("server stopped")


@server_group.group("token")
def token_group() -> None:
    """Create, list and revoke the API tokens of the server's store."""


@token_group.command("create")
@click.option("--name", required=True, metavar="NAME",
              help="A unique name: letters, digits, '.', '_' and '-'.")
@click.option("--read-only", is_flag=True, help="The token can read but not write.")
@store_option
@click.pass_context
def create_token(ctx: click.Context, name: str, read_only: bool) -> None:
    """Make a token and print it once on stdout (only its hash is kept)."""
    from runyard.core import tokens

    text, record = tokens.create(open_ctx_store(ctx), name, read_only=read_only)
    click.echo(text)
    kind = "read-only token" if record.read_only else "token"
    render.info(f"created {kind} {record.name!r}; it is shown only now: keep it "
                "(use it as `Authorization: Bearer <token>` or RUNYARD_TOKEN)")


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of tokens.")
@store_option
@click.pass_context
def list_tokens(ctx: click.Context, as_json: bool) -> None:
    """List the tokens (names and rights; never the tokens themselves)."""
    from runyard.core.tokens import token_to_dict

    found = open_ctx_store(ctx).list_tokens()
    if as_json:
        render.emit_json([token_to_dict(t) for t in found])
        return
    render.table(["name", "access", "created", "revoked"], [
        [t.name, "read-only" if t.read_only else "read-write", render.when(t.created),
         render.when(t.revoked) if t.revoked is not None else render.MISSING]
        for t in found])


@token_group.command("revoke")
@click.argument("name")
@store_option
@click.pass_context
def revoke_token(ctx: click.Context, name: str) -> None:
    """Revoke a token: it stops working at once, in every worker."""
    from runyard.core import tokens

    record = tokens.revoke(open_ctx_store(ctx), name)
    render.info(f"revoked token {record.name!r}")
