"""``runyard version …``: snapshot a workspace, list, show, compare, restore and delete versions.

Only parsing and rendering: the work is ``runyard.recording.versions``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from runyard.cli import render
from runyard.cli.state import open_ctx_store, state, store_option

if TYPE_CHECKING:
    from runyard.core.context import StoreContext
    from runyard.model import RunRecord


def version_context(ctx: click.Context) -> StoreContext:
    """The store context (run store and blobs) of this invocation's store."""
    from runyard.core.context import open_context
    from runyard.stores import resolve_url

    url = resolve_url(state(ctx).store_url)
    return open_context(url, store=open_ctx_store(ctx))


@click.group("version")
@store_option
def version_group() -> None:
    """Snapshot a workspace as an immutable version; list, show, diff, restore, delete."""


@version_group.command("create")
@click.option("--name", metavar="NAME", help="The version's name (default: a generated one).")
@click.option("-m", "--message", metavar="MSG", help="What this version is.")
@click.option("--workspace", metavar="DIR", help="The workspace folder (default: the folder "
              "holding runyard.yaml, else the working directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the version as a JSON object.")
@store_option
@click.pass_context
def create(ctx: click.Context, name: str | None, message: str | None, workspace: str | None,
           as_json: bool) -> None:
    """Snapshot the workspace as a new version; prints its name."""
    from runyard.model import validate
    from runyard.recording.versions import create_version, find_workspace

    if name is not None:
        validate.run_name(name)
    folder = find_workspace(workspace)
    with _progress(f"version of {folder}") as progress:
        version = create_version(version_context(ctx), folder, name=name, message=message,
                                 progress=progress)
    for note in version.internals.get("skipped") or []:
        render.warn(f"skipped {note}")
    if as_json:
        render.emit_json(_summary(version))
        return
    render.info(f"created version {version.name} of {folder}: "
                f"{version.internals['files']} files, {render.size(version.internals['bytes'])}")
    click.echo(version.name)


@version_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@store_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the versions, newest first (one that never completed says so)."""
    from runyard.recording.versions import list_versions

    versions = list_versions(version_context(ctx))
    if as_json:
        render.emit_json([_summary(v) for v in versions])
        return
    rows = [[v.id, v.name, _status(v), str(v.internals.get("files", "-")),
             render.size(v.internals["bytes"]) if "bytes" in v.internals else "-",
             render.when(v.created), _one_line(v.description)] for v in versions]
    render.table(["id", "name", "status", "files", "size", "created", "message"], rows,
                 status_column=2)


@version_group.command("show")
@click.argument("ref", metavar="VERSION")
@click.option("--json", "as_json", is_flag=True, help="Print it as a JSON object.")
@store_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show a version and its files."""
    from runyard.recording.manifest import to_json
    from runyard.recording.versions import get_version, read_manifest, runs_of

    context = version_context(ctx)
    version = get_version(context, ref)
    files = to_json(read_manifest(context, version))
    runs = [r.name for r in runs_of(context, version)]
    if as_json:
        render.emit_json({**_summary(version), "runs": runs, "files": files})
        return
    render.fields([("id", version.id), ("name", version.name), ("status", version.status.value),
                   ("message", version.description or ""),
                   ("workspace", str(version.internals.get("workspace", ""))),
                   ("created", render.when(version.created)),
                   ("manifest", str(version.internals.get("manifest"))),
                   ("runs", ", ".join(runs) or "none")])
    render.table(["path", "size", "mode", "sha256"],
                 [[ascii(p)[1:-1] if "\n" in p else p, render.size(f["size"]),
                   f"{f['mode']:o}", f["sha256"][:16]] for p, f in files.items()])


@version_group.command("diff")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@store_option
@click.pass_context
def diff(ctx: click.Context, old: str, new: str, as_json: bool) -> None:
    """What changed from version A to version B, path by path."""
    from runyard.recording.versions import diff_versions

    changes = diff_versions(version_context(ctx), old, new)
    if as_json:
        render.emit_json(changes.to_json())
        return
    for mark, paths in (("+", changes.added), ("-", changes.removed), ("M", changes.changed),
                        ("m", changes.mode_changed)):
        for path in paths:
            click.echo(f"{mark} {ascii(path)[1:-1] if chr(10) in path else path}")
    if changes.same:
        render.info(f"versions {old} and {new} hold the same files")


@version_group.command("restore")
@click.argument("ref", metavar="VERSION")
@click.argument("dest", metavar="[DIR]", required=False)
@click.option("--force", is_flag=True, help="Write into DIR even if it is not empty.")
@store_option
@click.pass_context
def restore(ctx: click.Context, ref: str, dest: str | None, force: bool) -> None:
    """Write a version's files into DIR (default: ./VERSION-NAME), a new or empty folder."""
    from runyard.recording.versions import get_version
    from runyard.recording.versions import restore as restore_version

    context = version_context(ctx)
    target = Path(dest) if dest else Path(get_version(context, ref).name)
    restore_version(context, ref, target, force=force)
    render.info(f"restored version {ref} into {target}")
    click.echo(str(target))


@version_group.command("delete")
@click.argument("ref", metavar="VERSION")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@store_option
@click.pass_context
def delete(ctx: click.Context, ref: str, yes: bool, as_json: bool) -> None:
    """Delete a version, its recorded runs, their runs/ folders and the blobs nothing else
    uses, permanently. Asks first unless --yes; with no terminal to ask on it refuses."""
    from runyard.recording.collect import delete_version, find_version

    context = version_context(ctx)
    version = find_version(context, ref)
    if not yes:
        _confirm(version)
    report = delete_version(context, version.id)
    if as_json:
        render.emit_json(report.to_json())
        return
    for note in report.notes:
        render.warn(note)
    render.info(f"deleted version {report.name} ({report.version}), {len(report.runs)} "
                f"recorded run(s), {report.blobs_removed} blob(s) "
                f"({render.size(report.bytes_freed)}); {report.blobs_kept} blob(s) kept")


def _confirm(version: RunRecord) -> None:
    from runyard.errors import RunyardError

    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise RunyardError(f"refusing to delete version {version.name} without confirmation: "
                           "stdin is not a terminal; pass --yes")
    if not click.confirm(f"Delete version {version.name}, its recorded runs and their "
                         "outputs, permanently?", default=False, err=True):
        raise RunyardError(f"aborted; version {version.name} was not deleted")


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A bar of files done on a terminal's stderr (shown once the work takes a while)."""
    if sys.stderr is None or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _summary(version: RunRecord) -> dict[str, Any]:
    keys = ("manifest", "workspace", "files", "bytes", "skipped")
    return {"id": version.id, "name": version.name, "status": _status(version),
            "status_reason": version.status_reason, "message": version.description,
            "created": version.created, "ended": version.ended,
            **{k: version.internals.get(k) for k in keys}}


def _status(version: RunRecord) -> str:
    """Its status, or ``deleting`` once a delete has begun (and not finished)."""
    return "deleting" if version.internals.get("deleting") else version.status.value


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())[:60]
