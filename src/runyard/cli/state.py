"""What the root group parses for every command: the store URL, and the store opened once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from runyard.stores import RunStore


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
