"""``runyard login URL``: keep a token for a runyard server, so ``http(s)://`` stores need no
``RUNYARD_TOKEN``.

The token is read from stdin (``runyard login URL < token.txt``) or asked for without echo,
never taken as an argument (other users can read a process's arguments). It is checked against
the server, then saved readable by the user only (``runyard.stores.credentials``).
"""

from __future__ import annotations

import sys

import click

from runyard.cli import render


@click.command("login")
@click.argument("url", metavar="URL")
@click.option("--no-check", is_flag=True,
              help="Save the token without asking the server whether it takes it.")
def login(url: str, no_check: bool) -> None:
    """Save a token for the runyard server at URL (read from stdin, or asked for).

    The server's admin makes tokens with `runyard server token create --name NAME`.
    """
    from runyard.stores.credentials import login as save_login

    if sys.stdin.isatty():
        token = click.prompt("token", hide_input=True, err=True)
    else:
        token = sys.stdin.readline()
    origin, path = save_login(url, token, check=not no_check)
    render.info(f"saved the token for {origin} in {path}")
