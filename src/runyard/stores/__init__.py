"""Run stores behind one protocol, opened by URL (see ``base.RunStore``)."""

from __future__ import annotations

import threading
from pathlib import Path

from runyard.stores.base import MetricSummary, RunFilter, RunStore
from runyard.stores.location import blob_root, home, parse_url, resolve_url

__all__ = [
    "MetricSummary",
    "RunFilter",
    "RunStore",
    "blob_root",
    "home",
    "open_store",
    "resolve_url",
]

_memory: dict[str, RunStore] = {}
_memory_lock = threading.Lock()


def open_store(url: str | None = None, *, start: Path | None = None) -> RunStore:
    """Open the store at ``url``, or the configured one (see ``location.resolve_url``).

    ``memory://NAME`` stores live as long as the process; the same name gives the same store.
    """
    resolved = resolve_url(url, start)
    parsed = parse_url(resolved)
    if parsed.scheme == "memory":
        from runyard.stores.memory import MemoryStore

        with _memory_lock:
            if parsed.target not in _memory:
                _memory[parsed.target] = MemoryStore(resolved)
            return _memory[parsed.target]
    if parsed.scheme == "file":
        from runyard.stores.filesystem import FileStore

        return FileStore(parsed.target, url=resolved)
    if parsed.scheme == "chunked":
        from runyard.stores.chunked import ChunkedStore

        return ChunkedStore(parsed.target, url=resolved)
    if parsed.scheme == "sqlite":
        from runyard.stores.sqlite import SqliteStore

        return SqliteStore(parsed.target, url=resolved)
    from runyard.stores.postgres import PostgresStore

    return PostgresStore(parsed.target)
