"""The root ``runyard`` group and the one place errors become exit codes.

A ``RunyardError`` (the user's mistake, or the world's) prints ``error: <message>`` as one line
on stderr and exits with the error's ``exit_code``; a click usage error does the same and exits
2. Any other exception is a bug in runyard and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from runyard import __version__
from runyard.cli.command_runs import (
    cancel_command,
    create_command,
    exec_command,
    logs_command,
    watch_command,
)
from runyard.cli.commands import buffer_group, codespec_group
from runyard.cli.runs import run_group
from runyard.cli.state import State
from runyard.cli.store import store_group
from runyard.cli.tracking import metrics, sync
from runyard.cli.workflows import config_group, rerun, workflow_group
from runyard.errors import RunyardError

ABORTED = 130  # the shell's code for a run stopped by ^C


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="runyard", message="%(prog)s %(version)s")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="The run store to use, e.g. sqlite:///path/runyard.db or file:///dir "
    "(default: RUNYARD_STORE, then runyard.yaml, then ./.runyard/runyard.db).",
)
@click.pass_context
def cli(ctx: click.Context, store_url: str | None) -> None:
    """runyard: define, execute, track and keep a reproducible record of runs."""
    ctx.obj = State(store_url)


cli.add_command(run_group)
cli.add_command(store_group)
cli.add_command(sync)
cli.add_command(codespec_group)
cli.add_command(buffer_group)
for _command in (exec_command, create_command, watch_command, cancel_command, logs_command):
    run_group.add_command(_command)
run_group.add_command(metrics)
cli.add_command(workflow_group)
cli.add_command(config_group)
run_group.add_command(rerun)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        result = cli.main(args=argv, prog_name="runyard", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        fail(exc.format_message(), command_path(exc))
        return exc.exit_code
    except click.Abort:
        fail("aborted")
        return ABORTED
    except RunyardError as exc:
        fail(str(exc) or type(exc).__name__)
        return exc.exit_code
    except BrokenPipeError:
        silence_stdout()
        return 1
    return result if isinstance(result, int) else 0


def fail(message: str, help_command: str | None = None) -> None:
    """Print ``error: <message>`` as exactly one line on stderr."""
    text = " ".join(message.split())
    if help_command:
        text = f"{text.rstrip('.')}; see `{help_command} --help`"
    click.echo(f"error: {text}", err=True)


def command_path(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if isinstance(exc, click.UsageError) and ctx is not None else None


def silence_stdout() -> None:
    """The reader of stdout went away (``runyard run list | head``): drop what is left."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
