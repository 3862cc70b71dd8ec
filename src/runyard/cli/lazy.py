"""A click group whose subcommands are imported only when used, so ``runyard --help`` is fast.

Each lazy entry names where the command lives (``module:attribute``) and its one-line help,
which ``--help`` shows without importing the module; a test keeps that line equal to the
command's own.
"""

from __future__ import annotations

import importlib

import click

LazyEntry = tuple[str, str]  # ("module:attribute", short help)


class LazyGroup(click.Group):
    def __init__(self, *args: object, lazy: dict[str, LazyEntry] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(load(self.lazy[cmd_name][0]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def load(path: str) -> click.Command:
    module, _, attribute = path.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{path} is not a click command")
    return command
