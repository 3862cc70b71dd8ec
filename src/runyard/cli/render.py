"""Output for the command line: data on stdout, status and warnings on stderr.

Tables are rich tables on a terminal and plain aligned columns otherwise (easy to ``grep`` and
``awk``); ``--json`` output is strict JSON (no NaN) a script can parse.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from runyard.stores.location import redact_url as redact_url  # the one redaction

MISSING = "-"
STATUS_STYLES = {
    "created": "dim",
    "pending": "blue",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "canceling": "yellow",
    "canceled": "yellow",
    "lost": "magenta",
}


def info(message: str) -> None:
    """A status line on stderr."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def emit_json(data: Any) -> None:
    """``data`` as strict, indented JSON on stdout."""
    import json

    from runyard.core.runlog import json_safe

    click.echo(json.dumps(json_safe(data), indent=2, allow_nan=False, ensure_ascii=False))


def stdout_is_terminal() -> bool:
    stream = sys.stdout
    return stream is not None and stream.isatty()


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    status_column: int | None = None,
    fold: Sequence[int] = (),
) -> None:
    """Print ``rows`` under ``headers``: a rich table on a terminal, plain columns otherwise.

    On a terminal too narrow for the table only the ``fold`` columns (free text) wrap.
    """
    if stdout_is_terminal():
        rich_table(headers, rows, status_column=status_column, fold=fold)
    else:
        for line in plain_columns(headers, rows):
            click.echo(line)


def plain_columns(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, with no trailing blanks."""
    cells = [list(headers), *[[c or MISSING for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def rich_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    status_column: int | None,
    fold: Sequence[int],
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
    for i, header in enumerate(headers):
        grid.add_column(header, no_wrap=i not in fold, overflow="fold")
    for row in rows:
        cells = [Text(c or MISSING) for c in row]
        if status_column is not None:
            cells[status_column].stylize(STATUS_STYLES.get(row[status_column], ""))
        grid.add_row(*cells)
    Console().print(grid)


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """``key  value`` lines, keys aligned; a value that is empty is shown as ``-``."""
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {value or MISSING}".rstrip())


def when(ts: float | None) -> str:
    """A local date and time to the second, or empty."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``850ms``, ``4.2s``, ``3m 05s``, ``2h 01m``, ``3d 04h``; empty for ``None``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def value(v: Any) -> str:
    """A metadata or parameter value on one line: strings as they are, the rest as JSON."""
    if isinstance(v, str):
        return v
    import json

    from runyard.core.runlog import json_safe

    return json.dumps(json_safe(v), ensure_ascii=False, sort_keys=True)


def number(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)
