"""Option types many commands share, each checked where the user types it.

A count (``--limit``, ``--tail``, ``--version``) has a ceiling as well as a floor: a store keeps
its numbers in 64-bit integers, and ``--limit 10**30`` must be a one-line usage error, not a
database's ``OverflowError``.
"""

from __future__ import annotations

from typing import Any

import click

MAX_COUNT = 2**31 - 1  # more than any store holds of anything; fits every backend's integer


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
            digits = text[1:] if text[:1] in ("+", "-") else text
            if not (digits.isascii() and digits.isdigit()):  # not ², no full-width digits, not --5
                self.fail(f"{_clip(value)!r} is not a whole number", param, ctx)
            digits = digits.lstrip("0")
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
