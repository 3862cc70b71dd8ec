"""``runyard export VERSION -o out.zip`` and ``runyard import out.zip``.

Only parsing and rendering: the work is ``runyard.recording.exports``.
"""

from __future__ import annotations

from pathlib import Path

import click

from runyard.cli import render
from runyard.cli.state import store_option
from runyard.cli.versions import version_context


@click.command("export")
@click.argument("version", metavar="VERSION")
@click.option("-o", "--output", "out", required=True, metavar="FILE",
              help="The zip to write; it must not exist yet.")
@click.option("--license", "license_", metavar="LICENSE",
              help="The work's license for the RO-Crate, e.g. "
              "https://spdx.org/licenses/CC-BY-4.0 (default: stated as not given).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@store_option
@click.pass_context
def export_cmd(ctx: click.Context, version: str, out: str, license_: str | None,
               as_json: bool) -> None:
    """Export a version and all its recorded runs as a BagIt zip holding an RO-Crate.

    The zip is a BagIt bag (SHA-512) whose data/ is an RO-Crate 1.1 (Process Run Crate 0.5):
    the version's files under workspace/, each run's outputs under runs/NAME/, each run a
    CreateAction. FILE must not exist yet."""
    from runyard.recording.exports import export_version
    from runyard.recording.versions import get_version, runs_of

    context = version_context(ctx)
    path = export_version(context, version, Path(out), license=license_)
    found = get_version(context, version)
    runs = runs_of(context, found)
    size = path.stat().st_size
    if as_json:
        render.emit_json({"path": str(path), "version": {"id": found.id, "name": found.name},
                          "runs": [r.id for r in runs], "bytes": size})
        return
    render.info(f"exported version {found.name} with {len(runs)} recorded run(s) "
                f"({render.size(size)})")
    click.echo(str(path))


@click.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
@store_option
@click.pass_context
def import_cmd(ctx: click.Context, path: str, as_json: bool) -> None:
    """Import an export: every hash checked first, then the version and its runs, ids kept.

    A damaged or tampered zip is refused whole. Names are kept: if a different run here
    holds one, nothing is imported (rename that run and import again). Importing again
    changes nothing."""
    from runyard.recording.exports import import_bundle

    report = import_bundle(version_context(ctx), Path(path))
    if as_json:
        render.emit_json(report.to_json())
        return
    what = f"version {report.version_name} with {len(report.runs)} recorded run(s)"
    if report.created == 0 and report.updated == 0:
        render.info(f"{what} already here; nothing changed")
    else:
        render.info(f"imported {what}: {report.created} new, {report.updated} brought up "
                    f"to date, {report.blobs_copied} blob(s) written")
    click.echo(report.version_id)
