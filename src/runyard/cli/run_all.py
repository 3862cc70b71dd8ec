"""``runyard run …``: every run command, each imported only when it is used.

A command run (``run exec``) then imports neither the workflow nor the tracking commands.
"""

from __future__ import annotations

import click

from runyard.cli.lazy import LazyEntry, LazyGroup
from runyard.cli.state import store_option

RUN_COMMANDS: dict[str, LazyEntry] = {  # name: (where it lives, its one-line help)
    "exec": ("runyard.cli.command_runs:exec_command",
             "Run a codespec with stdin as its input buffer and its output buffer on stdout."),
    "create": ("runyard.cli.command_runs:create_command",
               "Start a command run in a detached supervisor; print its id at once."),
    "watch": ("runyard.cli.command_runs:watch_command",
              "Print one JSON line per status change until the run has ended."),
    "cancel": ("runyard.cli.command_runs:cancel_command",
               "Ask a pending or running command run to stop (it ends as canceled)."),
    "logs": ("runyard.cli.command_runs:logs_command",
             "Print the stdout and stderr of every replica, merged in time order."),
    "list": ("runyard.cli.runs:list_runs", "List runs, newest first (or as --sort says)."),
    "show": ("runyard.cli.runs:show", "Show one run: fields, steps, metrics, catalog, events."),
    "rename": ("runyard.cli.runs:rename", "Give a run a new name."),
    "delete": ("runyard.cli.runs:delete", "Delete a run and its run log."),
    "metrics": ("runyard.cli.tracking:metrics",
                "Export a run's metrics, in logging order, to stdout."),
    "rerun": ("runyard.cli.workflows:rerun",
              "Run a workflow run again, reusing its unchanged task runs; print the new run id."),
}


@click.group("run", cls=LazyGroup, lazy=RUN_COMMANDS)
@store_option
def run_group() -> None:
    """Start, follow and inspect runs: exec, list, show, logs, metrics, rename, delete."""


__all__ = ["run_group"]
