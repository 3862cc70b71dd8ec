"""``runyard record`` and ``runyard reproduce``: recorded runs from the command line.

Only parsing and rendering: the work is ``runyard.recording.record`` and ``.reproduce``. The
job's output goes to stdout and stderr as it comes; runyard's own lines go to stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from runyard.cli import render
from runyard.cli.state import store_option

if TYPE_CHECKING:
    from runyard.model import RunRecord

CANCELED_EXIT = 130


@click.command("record", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.argument("entrypoint", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--version", "version", metavar="V",
              help="Run on version V (default: a new version of the workspace).")
@click.option("--name", metavar="NAME", help="The run's name (default: a generated one).")
@click.option("--network", is_flag=True, help="Let the job use the network (default: none).")
@click.option("--executor", default="sandbox", show_default=True, metavar="local|sandbox",
              help="Where the job runs: the bubblewrap sandbox, or a plain local process.")
@click.option("--no-env", "no_env", is_flag=True,
              help="Use this Python as it is instead of building the version's environment.")
@click.option("--timeout", metavar="DURATION", help="Fail the run after this long: 30, 300s, "
              "1.5h.")
@click.option("--workspace", metavar="DIR", help="The workspace folder (default: the folder "
              "holding runyard.yaml, else the working directory).")
@store_option
@click.pass_context
def record_cmd(ctx: click.Context, entrypoint: tuple[str, ...], version: str | None,
               name: str | None, network: bool, executor: str, no_env: bool,
               timeout: str | None, workspace: str | None) -> int:
    """Run an entrypoint on a version of the workspace, isolated; keep its outputs.

    ENTRYPOINT [ARGS...] is a script or Python file of the workspace, or a command. Every
    file it creates or changes is kept by hash, listed in the run's catalog and copied
    read-only to runs/<name>/. Options go before ENTRYPOINT; everything after it is its
    arguments.
    """
    from runyard.cli.versions import version_context
    from runyard.model import validate
    from runyard.recording.record import record
    from runyard.recording.versions import find_workspace

    if name is not None:
        validate.run_name(name)
    run = record(version_context(ctx), find_workspace(workspace), list(entrypoint),
                 version=version, name=name, network=network, executor=executor,
                 use_env=not no_env, timeout=_seconds(timeout), stream=_echo)
    _report(run)
    return exit_code(run)


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    from runyard.commands.codespec import parse_duration

    return parse_duration(text)


def _echo(stream: str, line: str) -> None:
    """The job's output as it comes; the environment build's on stderr too."""
    click.echo(line, err=stream != "stdout")


def _to_stderr(stream: str, line: str) -> None:
    """The job's output while it is reproduced (stdout is for the comparison)."""
    click.echo(line, err=True)


def _report(run: RunRecord) -> None:
    env = run.environment
    for note in env.get("not_honoured") or []:
        render.warn(f"not honoured: {note}")
    reason = f" ({run.status_reason})" if run.status_reason else ""
    folder = run.internals.get("folder")
    where = f"; outputs in {folder}/" if folder and run.internals.get("outputs") else ""
    render.info(f"recorded run {run.name} ({run.id}): {run.status.value}{reason}{where}")


def exit_code(run: RunRecord) -> int:
    """0 if it succeeded; the job's own exit code if it failed with one; 130 if canceled."""
    if run.status.value == "succeeded":
        return 0
    if run.status.value == "canceled":
        return CANCELED_EXIT
    code = run.internals.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


@click.command("reproduce")
@click.argument("ref", metavar="RUN")
@click.option("--executor", metavar="local|sandbox",
              help="Where to run it (default: where the first run ran).")
@click.option("--workspace", metavar="DIR", help="Where the new run's runs/ folder goes "
              "(default: the version's workspace, if it is on this machine).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@store_option
@click.pass_context
def reproduce_cmd(ctx: click.Context, ref: str, executor: str | None, workspace: str | None,
                  as_json: bool) -> int:
    """Run a recorded run again and compare its outputs file by file.

    RUN is run again from its version and its environment's lock, as a new recorded run whose
    origin is RUN; each output is identical, differ, missing or new. Exits 1 if anything
    differs."""
    from pathlib import Path

    from runyard.cli.versions import version_context
    from runyard.recording.reproduce import reproduce

    report = reproduce(version_context(ctx), ref, executor=executor,
                       workspace=None if workspace is None else Path(workspace),
                       stream=None if as_json else _to_stderr)
    if as_json:
        render.emit_json(report.to_json())
    else:
        for path, verdict in sorted(report.files.items()):
            click.echo(f"{verdict:<10} {path}")
        if not report.same_environment:
            render.warn("the environment's lock differs from the first run's")
        verdict = "differs from" if report.differs else "reproduces"
        render.info(f"run {report.run.name} ({report.run.status.value}) {verdict} run "
                    f"{report.original.name} ({report.original.status.value})")
    sys.stdout.flush()
    return 1 if report.differs else 0
