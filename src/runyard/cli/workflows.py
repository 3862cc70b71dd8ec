"""``runyard workflow run``, ``runyard run rerun`` and ``runyard config …``: parse and render.

The logic lives in ``runyard.engine``; these commands only turn text into calls and results
into text (data on stdout, status on stderr).
"""

from __future__ import annotations

from typing import Any

import click

from runyard.cli import render
from runyard.cli.params import Count
from runyard.cli.state import open_ctx_store, store_option
from runyard.engine.launching import import_workflow, importable_here
from runyard.errors import ValidationError


@click.group("workflow")
@store_option
def workflow_group() -> None:
    """Run workflows defined with @workflow."""


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` read as YAML (numbers, booleans, lists), else kept as text."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValidationError(f"invalid --param {text!r}: write it as NAME=VALUE")
    try:
        return key, yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return key, raw
    except RecursionError:
        raise ValidationError(f"--param {key} is nested too deeply; flatten it") from None




@workflow_group.command("run")
@click.argument("target", metavar="MODULE:FUNCTION")
@click.option("--config", "config", metavar="NAME", default="in_process", show_default=True,
              help="The runtime configuration (see `runyard config list`).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="An argument of the workflow (repeat); VALUE is read as YAML.")
@click.option("--name", metavar="NAME", help="Name the run (default: adjective-noun).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the end and print the results as JSON.")
@store_option
@click.pass_context
def run_workflow(ctx: click.Context, target: str, config: str, params: tuple[str, ...],
                 name: str | None, wait: bool) -> None:
    """Trace MODULE:FUNCTION with the given parameters and run it; print the run id."""
    from runyard.engine.config import resolve

    definition = import_workflow(target)
    chosen = resolve(config)
    plan = definition(**dict(parse_param(p) for p in params))
    run = plan.run(chosen, store=open_ctx_store(ctx), name=name)
    render.info(f"started workflow run {run.run_id} on {chosen.name}")
    click.echo(run.run_id)
    if wait:
        finish(run)


def finish(run: Any) -> None:
    results = run.get_results(wait=True)
    render.info(f"run {run.run_id} succeeded")
    render.emit_json(results if _jsonable(results) else repr(results))


def _jsonable(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@click.command("rerun")
@click.argument("ref", metavar="ID|NAME")
@click.option("--config", "config", metavar="NAME",
              help="The runtime configuration (default: the one the run used).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the end and print the results as JSON.")
@store_option
@click.pass_context
def rerun(ctx: click.Context, ref: str, config: str | None, wait: bool) -> None:
    """Run a workflow run again, reusing its unchanged task runs; print the new run id."""
    from runyard.engine import WorkflowRun

    importable_here()
    old = WorkflowRun.by_id(ref, open_ctx_store(ctx))
    new = old.rerun(config)
    render.info(f"re-running {old.run_id} as {new.run_id}: "
                f"{new.run.internals['rerun']['summary']}")
    click.echo(new.run_id)
    if wait:
        finish(new)


@click.group("config")
def config_group() -> None:
    """List, show, save and delete runtime configurations."""


@config_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_configs(as_json: bool) -> None:
    """The built-in configurations, then the saved ones."""
    from runyard.engine import RuntimeConfiguration

    configs = RuntimeConfiguration.list_configs()
    if as_json:
        render.emit_json([{"name": c.name, **c.to_dict(redact=True)} for c in configs])
        return
    rows = [[c.name, c.runtime, _options(c.to_dict(redact=True))] for c in configs]
    render.table(["name", "runtime", "options"], rows, fold=(2,))


def _options(data: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(data.items()) if k != "runtime")


@config_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show_config(name: str, as_json: bool) -> None:
    """One configuration (tokens are not shown)."""
    from runyard.engine import RuntimeConfiguration

    config = RuntimeConfiguration.load(name)
    data = {"name": config.name, **config.to_dict(redact=True)}
    if as_json:
        render.emit_json(data)
    else:
        render.fields([(k, str(v)) for k, v in data.items()])


@config_group.command("save")
@click.argument("name")
@click.option("--runtime", type=click.Choice(["in_process", "process", "ray"]), required=True)
@click.option("--max-workers", type=Count(1), help="Workers (in_process, process).")
@click.option("--address", help="Ray: the cluster address (default: a local cluster).")
@click.option("--port", type=click.IntRange(1024, 65000), help="Ray: the local cluster's port.")
@click.option("--num-cpus", type=Count(1), help="Ray: CPUs of the local cluster.")
@click.option("--token", help="Ray: the auth token of a remote cluster.")
def save_config(name: str, runtime: str, max_workers: int | None, address: str | None,
                port: int | None, num_cpus: int | None, token: str | None) -> None:
    """Save a configuration under NAME in the user's runtimes.yaml."""
    from runyard.engine import RuntimeConfiguration

    options = {"max_workers": max_workers, "address": address, "port": port,
               "num_cpus": num_cpus, "token": token}
    config = RuntimeConfiguration(name, runtime, {k: v for k, v in options.items() if v})
    saved = config.save()
    render.info(f"saved configuration {saved.name} ({saved.runtime})")


@config_group.command("delete")
@click.argument("name")
def delete_config(name: str) -> None:
    """Delete the saved configuration NAME."""
    from runyard.engine import RuntimeConfiguration

    RuntimeConfiguration.delete(name)
    render.info(f"deleted configuration {name}")


@click.group("ray")
def ray_group() -> None:
    """List, start and stop the local Ray clusters runyard starts."""


@ray_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_ray(as_json: bool) -> None:
    """runyard's local Ray clusters, by configuration name (none of any other Ray)."""
    from runyard.engine import ray_clusters

    clusters = ray_clusters()
    if as_json:
        render.emit_json([c.to_dict() for c in clusters])
        return
    rows = [[c.name, c.address, str(c.pid), "running" if c.running else "gone",
             render.when(c.started)] for c in clusters]
    render.table(["name", "address", "pid", "state", "started"], rows)


@ray_group.command("start")
@click.argument("name", default="ray")
def start_ray(name: str) -> None:
    """Start the local cluster of configuration NAME (default: ray) now; print its address."""
    from runyard.engine import RuntimeConfiguration

    address = RuntimeConfiguration.load(name).start()
    if address is None:
        raise ValidationError(f"configuration {name!r} has no local Ray cluster to start")
    click.echo(address)


@ray_group.command("stop")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Stop every cluster runyard started.")
def stop_ray(name: str | None, every: bool) -> None:
    """Stop the local cluster of configuration NAME (default: ray), or --all of them.
    Only clusters runyard started are stopped (never `ray stop`)."""
    from runyard.engine import stop_ray_cluster, stop_ray_clusters

    if every and name:
        raise ValidationError("give a configuration name or --all, not both")
    if every:
        stopped = stop_ray_clusters()
    else:
        stopped = [name or "ray"] if stop_ray_cluster(name or "ray") else []
    render.info(f"stopped: {', '.join(stopped)}" if stopped else "no cluster was running")
