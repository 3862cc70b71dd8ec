"""``runyard run metrics`` (export a run's metrics) and ``runyard sync`` (upload offline runs)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from runyard.cli import render
from runyard.cli.state import open_ctx_store, state, store_option

if TYPE_CHECKING:
    from runyard.model import Metric


@click.command("metrics")
@click.argument("ref", metavar="ID|NAME")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="Only the metric NAME (repeat for several); default: every metric.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True, help="csv: name,step,value,time rows; json: an array.")
@store_option
@click.pass_context
def metrics(ctx: click.Context, ref: str, names: tuple[str, ...], fmt: str) -> None:
    """Export a run's metrics, in logging order, to stdout.

    Values are written in full precision; NaN and infinities are written as nan, inf and -inf
    in CSV and as "NaN", "Infinity" and "-Infinity" in JSON.
    """
    store = open_ctx_store(ctx)
    run = store.find_run(ref)
    if names:
        known = {s.name for s in store.metric_summaries(run.id)}
        missing = [n for n in names if n not in known]
        if missing:
            from runyard.errors import NotFoundError

            raise NotFoundError(
                f"run {run.name} ({run.id}) has no metric {missing[0]!r}; "
                f"it has: {', '.join(sorted(known)) or 'none'}"
            )
    if len(names) == 1:
        chosen = store.read_metrics(run.id, names[0])
    else:
        chosen = _only(store.read_metrics(run.id), names) if names else store.read_metrics(run.id)
    write_csv(chosen) if fmt == "csv" else write_json(chosen)


def _only(rows: list[Metric], names: Iterable[str]) -> list[Metric]:
    wanted = set(names)
    return [m for m in rows if m.name in wanted]


def write_csv(rows: Iterable[Metric]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["name", "step", "value", "time"])
    for name, value, step, when in rows:
        out.writerow([name, "" if step is None else step, repr(float(value)), repr(when)])


def write_json(rows: Iterable[Metric]) -> None:
    """A JSON array written one element at a time (a million points need no big string)."""
    from runyard.core.runlog import json_safe

    write = sys.stdout.write
    write("[")
    for i, (name, value, step, when) in enumerate(rows):
        item = {"name": name, "step": step, "value": json_safe(float(value)), "time": when}
        write(("\n  " if i == 0 else ",\n  ") + json.dumps(item, ensure_ascii=False))
    write("\n]\n")


@click.command("sync")
@click.option("--to", "to_url", metavar="URL",
              help="The store to upload to (default: --store, RUNYARD_STORE, runyard.yaml, "
              "then ./.runyard/runyard.db).")
@click.option("--json", "as_json", is_flag=True, help="Print the sync report as JSON.")
@store_option
@click.pass_context
def sync(ctx: click.Context, to_url: str | None, as_json: bool) -> None:
    """Upload the runs of the offline spool (.runyard/offline) to a store.

    Closed and still-running offline runs are uploaded; a run already uploaded gets only
    what it lacks, so syncing again duplicates nothing and an interrupted sync completes when
    run again. A run leaves the spool once it is closed and fully uploaded. Only one sync
    runs at a time.
    """
    from runyard.cli.store import progress_bar
    from runyard.errors import ConflictError
    from runyard.tracking.sync import sync as sync_spool

    target = to_url or state(ctx).store_url
    with progress_bar("syncing offline runs") as progress:
        report = sync_spool(target, progress=progress)
    for problem in report.conflicts:
        render.warn(problem)
    render.info(
        f"synced {len(report.uploaded)} offline runs to {render.redact_url(report.destination)}: "
        f"{len(report.removed)} closed and removed from the spool, "
        f"{len(report.kept)} still open and kept"
    )
    from runyard.stores.spool import resend_all  # (what http stores spooled for servers)

    resent, waiting = resend_all()
    if resent or waiting:
        render.info(f"resent {resent} spooled batches to runyard servers; {waiting} still "
                    "wait for their server (run `runyard sync` again once it is up)")
    if as_json:
        render.emit_json({
            "destination": render.redact_url(report.destination),
            "uploaded": report.uploaded, "removed": report.removed, "kept": report.kept,
            "conflicts": report.conflicts, "blobs_copied": report.blobs_copied,
        })
    if report.conflicts:
        raise ConflictError(
            f"{len(report.conflicts)} offline runs could not be uploaded (see the warnings); "
            "they stay in the spool"
        )
