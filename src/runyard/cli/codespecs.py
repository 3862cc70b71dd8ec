"""``runyard codespec …`` and ``runyard buffer …``: register command specs, move bytes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from runyard.cli import render
from runyard.cli.params import Count
from runyard.cli.state import open_ctx_store, state, store_option

if TYPE_CHECKING:
    from runyard.commands.registry import Buffer, CodespecVersion
    from runyard.core.context import StoreContext

TAG_HELP = "A tag key=value (repeat for more)."


def command_context(ctx: click.Context) -> StoreContext:
    """The registry, blob store (and run store) of this invocation's store URL."""
    from runyard.commands.context import open_context
    from runyard.stores import resolve_url

    url = resolve_url(state(ctx).store_url)
    opened = open_context(url, store=open_ctx_store(ctx))
    ctx.find_root().call_on_close(opened.close)
    return opened


@click.group("codespec")
@store_option
def codespec_group() -> None:
    """Register, show and list codespecs: named, versioned command specs."""


@codespec_group.command("create")
@click.option("-f", "--file", "path", required=True, metavar="FILE",
              help="The codespec as YAML: name, command, and optional image, buffers, env.")
@click.option("--name", metavar="NAME", help="Register it under NAME instead of its `name`.")
@store_option
@click.pass_context
def codespec_create(ctx: click.Context, path: str, name: str | None) -> None:
    """Register a codespec; a changed spec becomes a new version. Prints NAME/versions/N."""
    from runyard.commands.codespec import from_mapping, load_yaml
    from runyard.commands.registry import add_codespec

    spec = from_mapping(load_yaml(path, "codespec file"), name)
    version, new = add_codespec(command_context(ctx).registry, spec)
    if new:
        render.info(f"registered codespec {version.name} version {version.version}")
    else:
        render.info(f"codespec {version.name} is unchanged: version {version.version}")
    click.echo(version.ref)


@codespec_group.command("show")
@click.argument("ref", metavar="NAME[/versions/N]")
@click.option("--json", "as_json", is_flag=True, help="Print it as a JSON object.")
@store_option
@click.pass_context
def codespec_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a codespec: the latest version of NAME, or NAME/versions/N."""
    from runyard.commands.registry import find_codespec

    found = find_codespec(command_context(ctx).registry, ref)
    if as_json:
        render.emit_json(version_dict(found))
        return
    import yaml

    render.fields([("codespec", found.ref), ("created", render.when(found.created))])
    click.echo()
    click.echo(yaml.safe_dump(found.spec.to_dict(), sort_keys=False).rstrip())


@codespec_group.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@store_option
@click.pass_context
def codespec_list(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List the latest version of every codespec, or every version of NAME."""
    from runyard.commands.registry import list_codespecs

    found = list_codespecs(command_context(ctx).registry, name)
    if as_json:
        render.emit_json([version_dict(v) for v in found])
        return
    rows = [[v.name, str(v.version), render.when(v.created), v.spec.image or "",
             " ".join(v.spec.command)] for v in found]
    render.table(["name", "version", "created", "image", "command"], rows, fold=(4,))


def version_dict(version: CodespecVersion) -> dict[str, object]:
    return {"name": version.name, "version": version.version, "ref": version.ref,
            "created": version.created, "spec": version.spec.to_dict()}


@click.group("buffer")
@store_option
def buffer_group() -> None:
    """Create, write, read, show and list buffers: byte streams kept in the blob store."""


@buffer_group.command("create")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help=TAG_HELP)
@store_option
@click.pass_context
def buffer_create(ctx: click.Context, tags: tuple[str, ...]) -> None:
    """Create an empty buffer and print its id."""
    from runyard.commands.registry import parse_tags

    click.echo(command_context(ctx).registry.create_buffer(
        parse_tags(tags)).id)


@buffer_group.command("write")
@click.argument("buffer_id", metavar="ID")
@store_option
@click.pass_context
def buffer_write(ctx: click.Context, buffer_id: str) -> None:
    """Write standard input into a new buffer (buffers are written once)."""
    from runyard.commands.buffers import write_buffer

    opened = command_context(ctx)
    opened.registry.buffer(buffer_id)
    done = write_buffer(opened.registry, opened.blobs, buffer_id, sys.stdin.fileno())
    render.info(f"wrote {render.size(done.size)} to buffer {buffer_id}")


@buffer_group.command("read")
@click.argument("buffer_id", metavar="ID")
@click.option("--incomplete", is_flag=True,
              help="Print what an incomplete buffer holds (and still exit non-zero).")
@store_option
@click.pass_context
def buffer_read(ctx: click.Context, buffer_id: str, incomplete: bool) -> None:
    """Write a buffer to standard output, following it while it is being written."""
    from runyard.commands.buffers import read_buffer
    from runyard.commands.follow import writer_gone
    from runyard.errors import ConflictError

    opened = command_context(ctx)
    sys.stdout.flush()
    if opened.registry.buffer(buffer_id).state == "incomplete" and not incomplete:
        raise ConflictError(incomplete_message(opened.registry.buffer(buffer_id)))
    done = read_buffer(opened.registry, opened.blobs, buffer_id, sys.stdout.fileno(),
                       writer_gone(opened.store))
    if done.state == "incomplete":
        raise ConflictError(incomplete_message(done))


def incomplete_message(buffer: Buffer) -> str:
    return (f"buffer {buffer.id} is incomplete ({buffer.reason}); "
            "`buffer read --incomplete` prints what it holds")


@buffer_group.command("show")
@click.argument("buffer_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print it as a JSON object.")
@store_option
@click.pass_context
def buffer_show(ctx: click.Context, buffer_id: str, as_json: bool) -> None:
    """Show a buffer: state, size, tags, and the run that writes it."""
    buffer = command_context(ctx).registry.buffer(buffer_id)
    if as_json:
        render.emit_json(buffer.to_dict())
        return
    render.fields([
        ("id", buffer.id), ("state", buffer.state + (f" ({buffer.reason})" if buffer.reason
                                                       else "")),
        ("size", render.size(buffer.size)), ("created", render.when(buffer.created)),
        ("tags", tag_text(buffer.tags)), ("run", buffer.run_id or ""),
    ])


@buffer_group.command("list")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Only buffers with this tag (repeat: all of them).")
@click.option("--limit", type=Count(0), default=1000, show_default=True,
              metavar="N", help="Show at most N buffers (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@store_option
@click.pass_context
def buffer_list(ctx: click.Context, tags: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List buffers, newest first."""
    from runyard.commands.registry import parse_tags

    found = command_context(ctx).registry.buffers(parse_tags(tags))
    if limit and len(found) > limit:
        render.warn(f"showing {limit} of {len(found)} buffers; use --limit")
        found = found[:limit]
    if as_json:
        render.emit_json([b.to_dict() for b in found])
        return
    rows = [[b.id, b.state, render.size(b.size), render.when(b.created), tag_text(b.tags),
             b.run_id or ""] for b in found]
    render.table(["id", "state", "size", "created", "tags", "run"], rows, fold=(4,))


def tag_text(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" if v else k for k, v in sorted(tags.items()))
