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
from runyard.cli.lazy import LazyGroup
from runyard.cli.state import State, given
from runyard.errors import RunyardError

ABORTED = 130  # the shell's code for a run stopped by ^C


COMMANDS = {  # name: (where the command lives, its one-line help, shown without importing it)
    "run": ("runyard.cli.run_all:run_group",
            "Start, follow and inspect runs: exec, list, show, logs, metrics, rename, delete."),
    "store": ("runyard.cli.store:store_group", "Inspect run stores and copy runs between them."),
    "sync": ("runyard.cli.tracking:sync",
             "Upload the runs of the offline spool (.runyard/offline) to a store."),
    "login": ("runyard.cli.login:login",
              "Save a token for the runyard server at URL (read from stdin, or asked for)."),
    "codespec": ("runyard.cli.codespecs:codespec_group",
                 "Register, show and list codespecs: named, versioned command specs."),
    "buffer": ("runyard.cli.codespecs:buffer_group",
               "Create, write, read, show and list buffers: byte streams kept in the blob store."),
    "workflow": ("runyard.cli.workflows:workflow_group", "Run workflows defined with @workflow."),
    "config": ("runyard.cli.workflows:config_group",
               "List, show, save and delete runtime configurations."),
    "ray": ("runyard.cli.workflows:ray_group",
            "List, start and stop the local Ray clusters runyard starts."),
    "server": ("runyard.cli.server:server_group",
               "Serve the store over HTTP (REST API, bearer tokens); manage its tokens."),
    "ui": ("runyard.cli.ui:ui_cmd",
           "Open the dashboard of the store in a browser (served on 127.0.0.1 until ^C)."),
    "version": ("runyard.cli.versions:version_group",
                "Snapshot a workspace as an immutable version; list, show, diff, restore, delete."),
    "record": ("runyard.cli.record:record_cmd",
               "Run an entrypoint on a version of the workspace, isolated; keep its outputs."),
    "reproduce": ("runyard.cli.record:reproduce_cmd",
                  "Run a recorded run again and compare its outputs file by file."),
    "export": ("runyard.cli.exports:export_cmd",
               "Export a version and all its recorded runs as a BagIt zip holding an RO-Crate."),
    "import": ("runyard.cli.exports:import_cmd",
               "Import an export: every hash checked first, then the version and its runs, "
               "ids kept."),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="runyard", message="%(prog)s %(version)s")
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    callback=given,
    help="The run store to use, e.g. sqlite:///path/runyard.db or file:///dir "
    "(default: RUNYARD_STORE, then runyard.yaml, then ./.runyard/runyard.db).",
)
@click.pass_context
def cli(ctx: click.Context, store_url: str | None) -> None:
    """runyard: define, execute, track and keep a reproducible record of runs."""
    ctx.obj = State(store_url)


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
    except KeyboardInterrupt:
        fail("interrupted")
        return ABORTED
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
