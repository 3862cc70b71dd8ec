"""What the root group parses for every command: the store URL, and the store opened once.

``--store`` is accepted after a group or subcommand as well as before it (``runyard run list
--store URL``), as users type it: ``store_option`` adds it there, setting the same ``State``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from runyard.stores import RunStore

STORE_HELP = "The run store to use (the same as `runyard --store URL`)."
F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Settings from the root group; the store is opened on first use and closed at exit."""

    def __init__(self, store_url: str | None = None) -> None:
        self.store_url = store_url
        self._store: RunStore | None = None

    def store(self, ctx: click.Context) -> RunStore:
        if self._store is None:
            from runyard.stores import open_store

            self._store = open_store(self.store_url)
            ctx.find_root().call_on_close(self._close)
        return self._store

    def _close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


def state(ctx: click.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # a subcommand invoked on its own, without the root group
        found = ctx.ensure_object(State)
    return found


def open_ctx_store(ctx: click.Context) -> RunStore:
    """The run store this invocation works on (``--store``, else the configured one)."""
    return state(ctx).store(ctx)


def given(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--store ""`` (an unset shell variable, say) is refused, not read as "the default"."""
    if value is not None and not value.strip():
        raise click.BadParameter("it is empty; give a store URL, or leave the option out",
                                 ctx, param)
    return value


def store_option(command: F) -> F:
    """``--store URL`` on a subcommand: the same setting as the root group's ``--store``."""
    return click.option("--store", "store_url", metavar="URL", expose_value=False,
                        callback=_take_store, help=STORE_HELP)(command)


def _take_store(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    given(ctx, param, value)
    from runyard.cli.render import redact_url

    chosen = state(ctx)
    if chosen.store_url not in (None, value):
        raise click.UsageError(
            f"--store is given twice, as {redact_url(chosen.store_url)!r} and "
            f"{redact_url(value)!r}; give it once", ctx)
    chosen.store_url = value
