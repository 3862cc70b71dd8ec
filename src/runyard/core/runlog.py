"""A run's whole run log as one JSON-ready document, and the small helpers the CLI needs.

``run_log`` is the document ``runyard run show --json`` prints. Its layout is versioned by
``schema``; scripts may rely on these keys:

    schema        1
    <run fields>  id, name, folder, kind, status, status_reason, description, tags, metadata,
                  parameters, created, started, ended, heartbeat, owner, code, environment,
                  config, origin, resources, internals (as ``run_to_dict`` writes them)
    duration      seconds from started to ended, or null
    steps         [{name, status, kind, created, duration, metadata, attempts: [...]}]
    metrics       {name: {count, last, last_step, min, max}}
    catalog       [{name, hash, size, stage, time, step, category}]
    events        {count, last: [{time, level, message}]}

Every float in the document is finite: NaN and infinities (a diverging loss) become the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, so any JSON parser reads it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runyard.errors import ValidationError

if TYPE_CHECKING:
    from runyard.model import Kind, RunRecord, Step
    from runyard.stores import MetricSummary, RunFilter, RunStore

SCHEMA = 1
EVENTS_TAIL = 10
DEFAULT_LIST_LIMIT = 1000

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])\Z")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def run_log(store: RunStore, run: RunRecord, *, events_tail: int = EVENTS_TAIL) -> dict[str, Any]:
    """The whole run log of ``run`` as one JSON-ready document (see the module docstring)."""
    from runyard.model import artifact_to_dict, run_to_dict

    events = store.read_events(run.id)
    doc: dict[str, Any] = {"schema": SCHEMA, **run_to_dict(run)}
    doc["duration"] = span(run.started, run.ended)
    doc["steps"] = [step_entry(s) for s in store.get_steps(run.id)]
    doc["metrics"] = metrics_entry(store.metric_summaries(run.id))
    doc["catalog"] = [artifact_to_dict(a) for a in store.list_artifacts(run.id)]
    last = events[-events_tail:] if events_tail > 0 else []
    doc["events"] = {
        "count": len(events),
        "last": [{"time": e.time, "level": e.level, "message": e.message} for e in last],
    }
    safe: dict[str, Any] = json_safe(doc)
    return safe


def step_entry(step: Step) -> dict[str, Any]:
    """A step as ``step_to_dict`` writes it, plus its duration: first start to last end."""
    from runyard.model import step_to_dict

    entry = step_to_dict(step)
    starts = [a.started for a in step.attempts if a.started is not None]
    last = step.attempts[-1] if step.attempts else None
    entry["duration"] = span(min(starts) if starts else None, last.ended if last else None)
    return entry


def metrics_entry(summaries: Iterable[MetricSummary]) -> dict[str, dict[str, Any]]:
    return {
        s.name: {
            "count": s.count,
            "last": s.last,
            "last_step": s.last_step,
            "min": s.minimum,
            "max": s.maximum,
        }
        for s in summaries
    }


def span(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return end - start


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return value


def parse_since(value: str, now: float | None = None) -> float:
    """Epoch seconds for ``value``: an ISO date or date-time (local time unless it names a
    zone), or an age before ``now`` such as ``45s``, ``30m``, ``1h``, ``2d``, ``1w``."""
    text = value.strip()
    age = _AGE.match(text.lower())
    if age:
        now = time.time() if now is None else now
        return now - float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValidationError(
            f"invalid time {value!r}: use a date (2026-11-01), a date and time "
            "(2026-11-01T10:00) or an age (30m, 1h, 2d)"
        ) from None


def run_filter(
    *,
    statuses: Iterable[str] = (),
    tags: Iterable[str] = (),
    folder: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    now: float | None = None,
) -> RunFilter:
    """A validated ``RunFilter`` from the text a user typed."""
    from runyard.model import Status
    from runyard.model import validate as check
    from runyard.stores import RunFilter

    return RunFilter(
        status=frozenset(Status.parse(s) for s in statuses),
        tags=frozenset(tags),
        folder=None if folder is None else check.folder(folder),
        name=name or None,
        kind=None if kind is None else parse_kind(kind),
        created_since=None if since is None else parse_since(since, now),
    )


def parse_kind(value: str) -> Kind:
    from runyard.model import Kind

    try:
        return Kind(value.lower())
    except ValueError:
        names = ", ".join(k.value for k in Kind)
        raise ValidationError(f"unknown run kind {value!r}; use one of: {names}") from None


def list_page(
    store: RunStore, wanted: RunFilter, limit: int | None = DEFAULT_LIST_LIMIT, *,
    order_by: str = "created", reverse: bool = False,
) -> tuple[list[RunRecord], int]:
    """The first ``limit`` runs matching ``wanted`` (all for ``None``) and how many match:
    newest first, or by ``order_by`` (a store's order: ``name``, ``param:lr``…) ascending;
    ``reverse`` turns either round."""
    descending = (order_by == "created") != reverse
    runs = store.list_runs(wanted, newest_first=descending, limit=limit, order_by=order_by)
    if limit is None or len(runs) < limit:
        return runs, len(runs)
    return runs, store.count_runs(wanted)
