"""``runyard store …``: where the store is, and copying every run from one store to another."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from runyard.cli import render
from runyard.cli.state import state, store_option


@click.group("store")
@store_option
def store_group() -> None:
    """Inspect run stores and copy runs between them."""


@store_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as a JSON object.")
@store_option
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Show the store URL in use (after --store, RUNYARD_STORE, runyard.yaml) and its blobs."""
    from runyard.core.context import blobs_shown
    from runyard.stores import resolve_url
    from runyard.stores.location import parse_url

    url = resolve_url(state(ctx).store_url)
    scheme = parse_url(url).scheme
    data = {"store": render.redact_url(url), "type": scheme, "blobs": blobs_shown(url)}
    if as_json:
        render.emit_json(data)
    else:
        render.fields(list(data.items()))


@store_group.command("copy")
@click.argument("src_url", metavar="SRC_URL")
@click.argument("dst_url", metavar="DST_URL")
@click.option("--json", "as_json", is_flag=True, help="Print the copy report as JSON.")
def copy_runs(src_url: str, dst_url: str, as_json: bool) -> None:
    """Copy every run (with its blobs) from SRC_URL into DST_URL.

    Runs already in DST_URL are brought up to date, so repeating a copy writes nothing new
    and an interrupted copy completes when run again. Nothing is deleted from DST_URL.
    """
    from runyard.core.copy import copy_store_urls

    label = f"copying {render.redact_url(src_url)} to {render.redact_url(dst_url)}"
    with progress_bar(label) as progress:
        report = copy_store_urls(src_url, dst_url, progress=progress)
    summary = (
        f"copied {report.copied} runs, updated {report.updated}, {report.unchanged} unchanged; "
        f"{report.blobs_copied} blobs copied"
    )
    if report.blobs_missing:
        summary += f", {report.blobs_missing} missing from the source"
    render.info(summary)
    if as_json:
        render.emit_json(
            {
                "copied": report.copied,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "blobs_copied": report.blobs_copied,
                "blobs_missing": report.blobs_missing,
                "surplus": list(report.surplus),
            }
        )
    if report.surplus:
        from runyard.errors import ConflictError

        for line in report.surplus:
            render.warn(line)
        raise ConflictError(
            f"{len(report.surplus)} runs hold more in {render.redact_url(dst_url)} than in "
            "the source (see the warnings), written twice by an earlier copy or added since; "
            "a copy deletes nothing: delete those runs there and copy again"
        )


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback: a bar on a terminal's stderr, else one line."""
    if not (sys.stderr is not None and sys.stderr.isatty()):
        announced = False

        def announce(done: int, total: int) -> None:
            nonlocal announced
            if not announced:
                render.info(f"{label}: {total} runs")
                announced = True

        yield announce
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
