"""Option types and options many commands share, each checked where the user types it.

A count (``--limit``, ``--tail``, ``--version``) has a ceiling as well as a floor: a store keeps
its numbers in 64-bit integers, and ``--limit 10**30`` must be a one-line usage error, not a
database's ``OverflowError``. ``--store`` is accepted after the subcommand as well as before it
(``runyard run list --store URL``), as users type it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

MAX_COUNT = 2**31 - 1  # more than any store holds of anything; fits every backend's integer
STORE_HELP = "The run store to use (the same as `runyard --store URL`)."

_WHOLE = re.compile(r"[+-]?[0-9]+")
F = TypeVar("F", bound=Callable[..., Any])


class Count(click.ParamType[int]):
    """A whole number from ``low`` to ``high``, with a message that says which."""

    name = "integer"

    def __init__(self, low: int = 0, high: int = MAX_COUNT) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int | None = value
        else:
            text = str(value).strip()
            if _WHOLE.fullmatch(text) is None:
                self.fail(f"{_clip(value)!r} is not a whole number", param, ctx)
            digits = text.lstrip("+-").lstrip("0")
            number = int(text) if len(digits) <= 19 else None  # past int's digit limit, too
        if number is None or not self.low <= number <= self.high:
            self.fail(f"{_clip(value)} is out of range: use a whole number from {self.low} to "
                      f"{self.high}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"Count({self.low}, {self.high})"


def _clip(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:20]}…"


def store_option(command: F) -> F:
    """``--store URL`` on a subcommand: the same setting as the root group's ``--store``."""
    return click.option("--store", "store_url", metavar="URL", expose_value=False,
                        callback=_take_store, help=STORE_HELP)(command)


def _take_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from runyard.cli.render import redact_url
    from runyard.cli.state import state

    chosen = state(ctx)
    if chosen.store_url not in (None, value):
        raise click.UsageError(
            f"--store is given twice, as {redact_url(chosen.store_url)!r} and "
            f"{redact_url(value)!r}; give it once", ctx)
    chosen.store_url = value
