"""``runyard run …``: every run command, gathered from the modules that define them."""

from __future__ import annotations

from runyard.cli.command_runs import (
    cancel_command,
    create_command,
    exec_command,
    logs_command,
    watch_command,
)
from runyard.cli.runs import run_group
from runyard.cli.tracking import metrics
from runyard.cli.workflows import rerun

for _command in (exec_command, create_command, watch_command, cancel_command, logs_command,
                 metrics, rerun):
    run_group.add_command(_command)

__all__ = ["run_group"]
