"""Where a tracked run is written: the configured store (shared), or the offline spool.

Stores opened by URL are shared by every run of the process and closed at exit: a parameter
scan of a thousand runs opens its store once. Every backend is safe to share between threads.
A store object handed in by the caller is used as it is and never closed.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from dataclasses import dataclass

from runyard.blobs import BlobStore
from runyard.core.context import context_of
from runyard.stores import RunStore, open_store, resolve_url
from runyard.tracking.spool import Spool

_lock = threading.Lock()
_stores: dict[str, RunStore] = {}


@dataclass(frozen=True)
class Target:
    """A store to write a run to, and how to get the blob store for a run's files."""

    store: RunStore
    blobs_for: Callable[[str], BlobStore]
    offline: bool


def shared_store(url: str | None) -> RunStore:
    """The process's store for ``url`` (the configured one for ``None``), opened once."""
    resolved = resolve_url(url)
    with _lock:
        store = _stores.get(resolved)
        if store is None:
            if not _stores:
                atexit.register(close_shared)
            store = _stores[resolved] = open_store(resolved)
        return store


def close_shared() -> None:
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()


def target(store: str | RunStore | None, offline: bool) -> Target:
    if offline:
        spool = Spool()
        return Target(shared_store(spool.url), spool.blobs, True)
    chosen = shared_store(store) if store is None or isinstance(store, str) else store
    return Target(chosen, lambda _run_id: context_of(chosen).blobs, False)
