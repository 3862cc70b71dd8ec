"""``runyard run …``: list, show, rename and delete runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from runyard.cli import render
from runyard.cli.params import Count
from runyard.cli.state import open_ctx_store, store_option
from runyard.core.runlog import DEFAULT_LIST_LIMIT, list_page, run_filter

if TYPE_CHECKING:
    from runyard.model import RunRecord


@click.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Only runs with this status, e.g. running or failed (repeat: any of them).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only runs with this tag (repeat: all of them).",
)
@click.option("--folder", metavar="FOLDER", help="Only runs in FOLDER or below it, like /a/b.")
@click.option("--name", metavar="TEXT", help="Only runs whose name contains TEXT.")
@click.option("--kind", metavar="KIND", help="Only runs of this kind, e.g. workflow.")
@click.option(
    "--since",
    metavar="TIME",
    help="Only runs created at or after TIME: 2026-11-01, 2026-11-01T10:00, or an age "
    "like 30m, 1h, 2d.",
)
@click.option(
    "--limit",
    type=Count(0),
    metavar="N",
    default=DEFAULT_LIST_LIMIT,
    show_default=True,
    help="Show at most N runs (0: all of them).",
)
@click.option(
    "--sort",
    "order_by",
    metavar="KEY",
    default="created",
    show_default=True,
    help="Order by created (newest first), name, started, ended, status, kind, duration or "
    "param:NAME (ascending; runs without a value last).",
)
@click.option("--reverse", is_flag=True, help="Turn the order round.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of runs.")
@store_option
@click.pass_context
def list_runs(
    ctx: click.Context,
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    folder: str | None,
    name: str | None,
    kind: str | None,
    since: str | None,
    limit: int,
    order_by: str,
    reverse: bool,
    as_json: bool,
) -> None:
    """List runs, newest first (or as --sort says)."""
    wanted = run_filter(
        statuses=statuses, tags=tags, folder=folder, name=name, kind=kind, since=since
    )
    from runyard.core.liveness import sweep

    store = open_ctx_store(ctx)
    sweep(store)  # runs whose owner died are listed (and stored) as lost
    runs, total = list_page(store, wanted, limit or None, order_by=order_by,
                             reverse=reverse)
    if total > len(runs):
        render.warn(f"showing {len(runs)} of {total} runs; use --limit")
    if as_json:
        from runyard.model import run_to_dict

        render.emit_json([run_to_dict(r) for r in runs])
        return
    render.table(
        ["id", "name", "status", "kind", "folder", "created", "duration", "tags"],
        [run_row(r) for r in runs],
        status_column=2,
        fold=(4, 7),
    )


def run_row(run: RunRecord) -> list[str]:
    took = None if run.started is None or run.ended is None else run.ended - run.started
    return [
        run.id,
        run.name,
        run.status.value,
        run.kind.value,
        run.folder,
        render.when(run.created),
        render.duration(took),
        ",".join(sorted(run.tags)),
    ]


@click.command("show")
@click.argument("ref", metavar="ID|NAME")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole run log as one JSON document."
)
@click.option(
    "--events",
    "events_tail",
    type=Count(0),
    metavar="N",
    default=10,
    show_default=True,
    help="How many of the latest events to include.",
)
@store_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool, events_tail: int) -> None:
    """Show one run: fields, steps, metrics, catalog, events.

    With --json, print the whole run log as one document (schema 1) for scripts.
    """
    from runyard.core.liveness import refresh
    from runyard.core.runlog import run_log

    store = open_ctx_store(ctx)
    doc = run_log(store, refresh(store, store.find_run(ref)), events_tail=events_tail)
    if as_json:
        render.emit_json(doc)
    else:
        from runyard.cli.show import show_run

        show_run(doc)


@click.command("rename")
@click.argument("ref", metavar="ID|NAME")
@click.argument("new_name", metavar="NEW")
@store_option
@click.pass_context
def rename(ctx: click.Context, ref: str, new_name: str) -> None:
    """Give a run a new name.

    A name is letters, digits, '.', '_' and '-', starting with a letter or digit, and unique
    in the store.
    """
    from runyard.model import validate

    validate.run_name(new_name)
    store = open_ctx_store(ctx)
    run = store.find_run(ref)
    if run.kind.value == "recorded":  # its runs/<name>/ folder is renamed with it
        from runyard.cli.versions import version_context
        from runyard.recording.record import rename as rename_recorded

        renamed = rename_recorded(version_context(ctx), run, new_name)
    else:
        renamed = store.rename_run(run.id, new_name)
    render.info(f"renamed run {run.id}: {run.name} -> {renamed.name}")


@click.command("delete")
@click.argument("ref", metavar="ID|NAME")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking for confirmation.")
@store_option
@click.pass_context
def delete(ctx: click.Context, ref: str, yes: bool) -> None:
    """Delete a run and its run log.

    Asks first unless --yes is given; with no terminal to ask on it refuses. The run's blobs
    stay in the blob store, since other runs may share them.
    """
    from runyard.errors import StoreError

    store = open_ctx_store(ctx)
    try:
        run = store.find_run(ref)
    except StoreError:  # a damaged run log: deleted unread, by its id, when --yes is given
        if not yes:
            raise
        store.delete_run(ref)
        render.info(f"deleted run {ref} (its run log was damaged)")
        return
    from runyard.core.runs import check_deletable, delete_run

    check_deletable(store, run)
    if not yes:
        confirm_delete(run)
    delete_run(store, run.id)
    render.info(f"deleted run {run.id} ({run.name})")


def confirm_delete(run: RunRecord) -> None:
    """Ask on the terminal; with no terminal to ask on, refuse rather than delete silently."""
    from runyard.errors import RunyardError

    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise RunyardError(
            f"refusing to delete run {run.id} ({run.name}) without confirmation: "
            "stdin is not a terminal; pass --yes"
        )
    if not click.confirm(f"Delete run {run.id} ({run.name})?", default=False, err=True):
        raise RunyardError(f"aborted; run {run.id} ({run.name}) was not deleted")
