"""Where a tracked run is written: the configured store (shared), or the offline spool.

Stores opened by URL are shared by every run of the process (through the store context, closed
at exit): a parameter scan of a thousand runs opens its store once. Every backend is safe to
share between threads. A store object handed in by the caller is used as it is, never closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from runyard.blobs import BlobStore
from runyard.core.context import context_of, open_context
from runyard.stores import RunStore
from runyard.tracking.spool import Spool


@dataclass(frozen=True)
class Target:
    """A store to write a run to, and how to get the blob store for a run's files."""

    store: RunStore
    blobs_for: Callable[[str], BlobStore]
    offline: bool


def shared_store(url: str | None) -> RunStore:
    """The process's store for ``url`` (the configured one for ``None``): its store context's,
    opened once (``runyard.core.context`` is the one process-level cache)."""
    return open_context(url).store


def target(store: str | RunStore | None, offline: bool) -> Target:
    if offline:
        spool = Spool()
        return Target(shared_store(spool.url), spool.blobs, True)
    chosen = shared_store(store) if store is None or isinstance(store, str) else store
    return Target(chosen, lambda _run_id: context_of(chosen).blobs, False)
