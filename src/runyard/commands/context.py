"""The store context as command runs open it: a store other processes can reach.

Command runs use the one store context (``runyard.core.context.StoreContext``: run store,
blob store, registry); this module adds what is particular to them: the store must outlive
this process (not ``memory://``), and its backend is imported before a supervisor is forked.
"""

from __future__ import annotations

import weakref

from runyard.core.context import StoreContext
from runyard.core.context import open_context as open_store_context
from runyard.errors import ConfigError
from runyard.stores import RunStore
from runyard.stores.location import parse_url

LEGACY_REGISTRY = "commands.db"  # where runyard kept codespecs before they moved into the store


def open_context(url: str, store: RunStore | None = None) -> StoreContext:
    """The store context of ``url``, if command runs can use it."""
    ctx = open_store_context(check_url(url), store=store)
    if ctx not in _adopted:
        _adopted.add(ctx)
        adopt_legacy_codespecs(ctx)
    return ctx


_adopted: weakref.WeakSet[StoreContext] = weakref.WeakSet()


def adopt_legacy_codespecs(ctx: StoreContext) -> int:
    """Move the codespecs of an older runyard's ``commands.db`` (beside the blobs) into the
    run store, once: the file is renamed ``commands.db.imported`` afterwards. Its buffers,
    streams written once for the runs of that time, are not moved. How many were added."""
    try:
        path = ctx.blob_root.parent / LEGACY_REGISTRY
    except ConfigError:
        return 0  # (no local folder: no legacy file either)
    if not path.is_file():
        return 0
    import contextlib
    import json
    import os
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows = conn.execute("SELECT name, version, created, digest, spec FROM codespecs "
                                "ORDER BY name, version").fetchall()
    except sqlite3.Error:
        return 0  # not a registry of ours: left alone
    added = 0
    for name, version, created, digest, spec in rows:
        if ctx.store.get_codespec(name, version) is None:
            added += ctx.store.add_codespec(name, digest, json.loads(spec), created)[1]
    os.replace(path, path.with_name(path.name + ".imported"))
    return added


def preload(url: str) -> None:
    """Import the store backend of ``url`` now: done before a supervisor is forked, the
    command line and the supervisor share it instead of importing it each."""
    import importlib

    scheme = parse_url(url).scheme
    module = {"sqlite": "sqlite", "file": "filesystem", "chunked": "chunked"}.get(scheme)
    if module is not None:
        importlib.import_module(f"runyard.stores.{module}")


def check_url(url: str) -> str:
    """``url``, if command runs can use it: other processes must be able to open it."""
    if parse_url(url).scheme == "memory":
        raise ConfigError("command runs need a store other processes can open; "
                          "a memory:// store lives in one process only")
    return url
