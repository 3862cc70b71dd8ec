"""The human view of one run, drawn from the ``run_log`` document (so both views agree)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from runyard.cli import render


def show_run(doc: Mapping[str, Any]) -> None:
    render.fields(summary_fields(doc))
    mapping_section("metadata", doc["metadata"])
    mapping_section("parameters", doc["parameters"])
    mapping_section("resources", doc.get("resources") or {})
    if doc.get("kind") == "recorded":
        environment_section(doc.get("environment") or {})
    mapping_section("internals (kept by runyard)", doc.get("internals") or {})
    steps_section(doc["steps"])
    metrics_section(doc["metrics"])
    catalog_section(doc["catalog"])
    events_section(doc["events"])


def summary_fields(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    status = doc["status"]
    if doc.get("status_reason"):
        status = f"{status} ({doc['status_reason']})"
    return [
        ("id", doc["id"]),
        ("name", doc["name"]),
        ("status", status),
        ("kind", doc["kind"]),
        ("folder", doc["folder"]),
        ("description", doc.get("description") or ""),
        ("tags", ", ".join(doc["tags"])),
        ("created", render.when(doc["created"])),
        ("started", render.when(doc.get("started"))),
        ("ended", render.when(doc.get("ended"))),
        ("duration", render.duration(doc.get("duration"))),
        ("origin", doc.get("origin") or ""),
        ("code", code_line(doc.get("code")) or "none"),
        ("owner", owner_line(doc.get("owner"))),
    ]


def code_line(code: Mapping[str, Any] | None) -> str:
    """``commit abc123 on main (dirty) from <remote>``, from whatever the identity holds."""
    if not code:
        return ""
    parts = []
    commit = code.get("commit")
    if commit:
        parts.append(f"commit {str(commit)[:12]}")
    if code.get("branch"):
        parts.append(f"on {code['branch']}")
    if code.get("dirty"):
        parts.append("(dirty)")
    remote = code.get("remote") or code.get("remote_url")
    if remote:
        parts.append(f"from {remote}")
    return " ".join(parts) or render.value(dict(code))


def owner_line(owner: Mapping[str, Any] | None) -> str:
    if not owner:
        return ""
    return f"pid {owner['pid']} on {owner['host']}"


def heading(title: str) -> None:
    click.echo()
    click.echo(f"{title}:")


def mapping_section(title: str, data: Mapping[str, Any]) -> None:
    if not data:
        return
    heading(title)
    width = max(len(str(k)) for k in data)
    for key in sorted(data, key=str):
        click.echo(f"  {str(key).ljust(width)}  {clipped(render.value(data[key]))}")


def environment_section(env: Mapping[str, Any]) -> None:
    """A recorded run's environment, and each thing of its version it did not honour (why),
    one line each, whole: what the run did *not* get must be seen."""
    mapping_section("environment", {k: v for k, v in env.items() if k != "not_honoured"})
    notes = env.get("not_honoured") or []
    if notes:
        heading("not honoured")
        for note in notes:
            click.echo(f"  {note}")


def clipped(text: str, limit: int = 100) -> str:
    """Long values (a workflow's DAG, say) are cut here; ``run show --json`` has them whole."""
    return text if len(text) <= limit else text[: limit - 20] + f"… ({len(text)} chars, see --json)"


def steps_section(steps: list[Mapping[str, Any]]) -> None:
    if not steps:
        return
    heading("steps")
    rows: list[list[str]] = []
    for step in steps:
        attempts = step["attempts"] or [None]
        rows.extend(attempt_row(step["name"], step, attempt) for attempt in attempts)
    render.table(
        ["step", "attempt", "status", "started", "duration", "message"],
        rows,
        status_column=2,
        fold=(0, 5),
    )


def attempt_row(name: str, step: Mapping[str, Any], attempt: Mapping[str, Any] | None) -> list[str]:
    if attempt is None:
        reused = (step.get("metadata") or {}).get("reused_from")
        note = f"reused from {reused['run']} {reused['step']}" if reused else ""
        return [name, "", step["status"], "", render.duration(step.get("duration")), note]
    return [
        name,
        str(attempt["number"]),
        attempt["status"],
        render.when(attempt.get("started")),
        render.duration(attempt.get("duration")),
        one_line(attempt.get("message") or ""),
    ]


def metrics_section(metrics: Mapping[str, Mapping[str, Any]]) -> None:
    if not metrics:
        return
    heading("metrics")
    rows = [
        [
            name,
            str(m["count"]),
            render.number(m["last"]),
            render.number(m["last_step"]),
            render.number(m["min"]),
            render.number(m["max"]),
        ]
        for name, m in metrics.items()
    ]
    render.table(["metric", "count", "last", "last step", "min", "max"], rows, fold=(0,))


def catalog_section(catalog: list[Mapping[str, Any]]) -> None:
    if not catalog:
        return
    heading("catalog")
    rows = [
        [a["name"], a["stage"], render.size(a["size"]), a["hash"][:12], a.get("step") or ""]
        for a in catalog
    ]
    render.table(["artifact", "stage", "size", "hash", "step"], rows, fold=(0, 4))


def events_section(events: Mapping[str, Any]) -> None:
    if not events["count"]:
        return
    shown = events["last"]
    more = f", last {len(shown)} shown" if len(shown) < events["count"] else ""
    heading(f"events ({events['count']}{more})")
    for event in shown:
        level = event["level"] if event["level"] != "info" else ""
        prefix = f"{level}: " if level else ""
        click.echo(f"  {render.when(event['time'])}  {prefix}{one_line(event['message'])}")


def one_line(text: str) -> str:
    return " ".join(text.split())
