"""Generated run names: ``adjective-noun``, unique within a store, never overwriting."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

from coolname import generate_slug

from runyard.errors import NameTaken

T = TypeVar("T")
ATTEMPTS = 20


def generate_name() -> str:
    return str(generate_slug(2))


def with_unique_name(create: Callable[[str], T], name: str | None = None) -> T:
    """Call ``create(name)``; for a generated name, retry with fresh names on a collision.

    A name the user gave is never changed: its collision is raised as ``NameTaken``. After
    ``ATTEMPTS`` colliding two-word names a random suffix is added, so creation always ends.
    """
    if name is not None:
        return create(name)
    for attempt in range(ATTEMPTS + 1):
        candidate = generate_name()
        if attempt == ATTEMPTS:
            candidate = f"{candidate}-{secrets.token_hex(3)}"
        try:
            return create(candidate)
        except NameTaken:
            continue
    raise NameTaken(candidate)
