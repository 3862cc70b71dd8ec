"""``runyard run exec|create|watch|cancel|logs``: command runs from the command line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from runyard.cli import render
from runyard.cli.codespecs import command_context
from runyard.cli.params import Count
from runyard.cli.state import store_option

if TYPE_CHECKING:
    from runyard.commands.detach import Handle
    from runyard.commands.runspec import Flags
    from runyard.model import LogLine, RunRecord


def spec_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``run exec`` and ``run create`` share."""
    options = [
        click.option("-f", "--file", metavar="FILE",
                     help="A run spec: job: {codespec, buffers, tags, replicas}, timeoutSeconds."),
        click.option("-c", "--codespec", metavar="NAME[/versions/N]",
                     help="The codespec to run (the latest version unless one is named)."),
        click.option("--version", "version", type=Count(1), metavar="N",
                     help="Run version N of the codespec."),
        click.option("--buffer", "buffers", multiple=True, metavar="NAME=ID",
                     help="Pass buffer ID as parameter NAME (repeat for more)."),
        click.option("-r", "--replicas", type=Count(1), metavar="N",
                     help="Run N copies in parallel (each gets RUNYARD_REPLICA_INDEX)."),
        click.option("--timeout", metavar="DURATION",
                     help="Fail the run after this long, e.g. 300s, 1.5h, 2h45m."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
                     help="Tag the run (repeat for more)."),
        click.option("--executor", metavar="NAME",
                     help="local (default) or sandbox (bubblewrap); also RUNYARD_EXECUTOR."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def flags(kwargs: dict[str, Any]) -> Flags:
    from runyard.commands.runspec import Flags

    return Flags(**{k: kwargs[k] for k in ("file", "codespec", "version", "buffers",
                                            "replicas", "timeout", "tags", "executor")})


def preforked(ctx: click.Context) -> Handle:
    """A supervisor forked before this process opens any database or imports what only it
    needs (see ``detach.prefork``): both then get ready at the same time. What both need (the
    model, the store backend, the registry) is imported once, before the fork."""
    from runyard.cli.state import state
    from runyard.commands.context import check_url, preload
    from runyard.commands.detach import prefork
    from runyard.stores import resolve_url

    url = check_url(resolve_url(state(ctx).store_url))
    preload(url)
    handle = prefork(url)
    ctx.find_root().call_on_close(handle.close)
    return handle


def status_line(run: RunRecord) -> None:
    reason = f" ({run.status_reason})" if run.status_reason else ""
    render.info(f"run {run.id}: {run.status.value}{reason}")


@click.command("exec")
@spec_options
@click.option("--logs", is_flag=True, help="Also stream the job's logs to stderr.")
@store_option
@click.pass_context
def exec_command(ctx: click.Context, /, logs: bool, **kwargs: Any) -> None:
    """Run a codespec with stdin as its input buffer and its output buffer on stdout.

    Status lines and the run id go to stderr; exits non-zero unless the run succeeded.
    """
    handle = preforked(ctx)
    from runyard.commands.execute import Streams, exec_run
    from runyard.commands.runspec import build

    opened = command_context(ctx)
    spec = build(opened.registry, flags(kwargs))
    sys.stdout.flush()
    io = Streams(sys.stdin.fileno(), sys.stdout.fileno(), on_created=created_line,
                 on_status=status_line, on_logs=log_printer(False) if logs else None)
    freeze_heap()
    run = exec_run(opened, spec, io, handle)
    freeze_heap()
    for problem in io.errors:
        render.warn(problem)
    fail_unless_succeeded(run)


def freeze_heap() -> None:
    """Exempt every object alive now from the cyclic garbage collector (``gc.freeze``).

    They are modules, classes and the like, never garbage; a collection walks every object it
    tracks, and the interpreter runs one more at exit: on a slow machine that is tens of
    milliseconds, for a command line that is about to end."""
    import gc

    gc.freeze()


def created_line(run: RunRecord) -> None:
    render.info(f"run {run.id} ({run.name}) created")


def fail_unless_succeeded(run: RunRecord) -> None:
    from runyard.errors import RunyardError
    from runyard.model import Status

    if run.status is not Status.SUCCEEDED:
        reason = f": {run.status_reason}" if run.status_reason else ""
        raise RunyardError(f"run {run.id} ({run.name}) {run.status.value}{reason}")


@click.command("create")
@spec_options
@store_option
@click.pass_context
def create_command(ctx: click.Context, /, **kwargs: Any) -> None:
    """Start a command run in a detached supervisor; print its id at once."""
    handle = preforked(ctx)
    from runyard.commands import launch
    from runyard.commands.runspec import build

    opened = command_context(ctx)
    created = launch.create(opened, build(opened.registry, flags(kwargs)), owner=handle.owner)
    launch.start(opened, created.run, handle)
    freeze_heap()
    for name in sorted(created.new):
        render.info(f"created buffer {created.buffers[name]} for {name}")
    click.echo(created.run.id)


@click.command("watch")
@click.argument("ref", metavar="ID|NAME")
@click.option("--full-resource", is_flag=True, help="Print the whole run on each change.")
@store_option
@click.pass_context
def watch_command(ctx: click.Context, ref: str, full_resource: bool) -> None:
    """Print one JSON line per status change until the run has ended."""
    import json

    from runyard.commands.follow import statuses
    from runyard.core.runlog import json_safe
    from runyard.model import run_to_dict

    store = command_context(ctx).store
    for run in statuses(store, store.find_run(ref).id):
        data = run_to_dict(run) if full_resource else {
            "id": run.id, "status": run.status.value, "status_reason": run.status_reason,
            "time": run.ended or run.started or run.created}
        click.echo(json.dumps(json_safe(data), ensure_ascii=False))


@click.command("cancel")
@click.argument("ref", metavar="ID|NAME")
@store_option
@click.pass_context
def cancel_command(ctx: click.Context, ref: str) -> None:
    """Ask a pending or running command run to stop (it ends as canceled)."""
    from runyard.commands.launch import cancel

    run = cancel(command_context(ctx), ref)
    render.info(f"run {run.id}: {run.status.value}")


@click.command("logs")
@click.argument("ref", metavar="ID|NAME")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Stream until the run has ended.")
@click.option("-s", "--since", metavar="TIME", help="Only lines at or after TIME (30m, ISO).")
@click.option("--tail", type=Count(0), metavar="N", help="Only the last N lines.")
@click.option("--timestamps", is_flag=True, help="Start each line with its time.")
@store_option
@click.pass_context
def logs_command(ctx: click.Context, ref: str, follow_: bool, since: str | None,
                 tail: int | None, timestamps: bool) -> None:
    """Print the stdout and stderr of every replica, merged in time order."""
    from runyard.commands import follow
    from runyard.core.runlog import parse_since

    store = command_context(ctx).store
    run = store.find_run(ref)
    start = None if since is None else parse_since(since)
    lines = follow.merged_logs(store.read_logs(run.id, since=start, tail=tail))
    show = log_printer(timestamps, err=False)
    show(lines)
    if not follow_:
        return
    reader = follow.LogFollower(store, run.id, lines[-1].time if lines else start)
    reader.seen_at_since = sum(1 for line in lines if line.time == lines[-1].time)
    while not follow.ended(follow.refresh(store, store.get_run(run.id))):
        show(reader.new_lines())
        time.sleep(follow.LOG_POLL_S)
    show(reader.new_lines())


def log_printer(timestamps: bool, err: bool = True) -> Callable[[list[LogLine]], None]:
    def show(lines: list[LogLine]) -> None:
        for line in lines:
            stamp = f"{render.when(line.time)}.{int(line.time % 1 * 1000):03d} " \
                if timestamps else ""
            click.echo(f"{stamp}{line.text}", err=err)
        if lines and not err:
            sys.stdout.flush()

    return show
