"""Run stores behind one protocol, opened by URL (see ``base.RunStore``)."""

from __future__ import annotations

import threading
from pathlib import Path

from runyard.stores.base import MetricSummary, RunFilter, RunStore
from runyard.stores.location import blob_location, home, parse_url, redact_url, resolve_url
from runyard.stores.streams import MetricColumns, MetricSeries

__all__ = [
    "MetricColumns",
    "MetricSeries",
    "MetricSummary",
    "RunFilter",
    "RunStore",
    "blob_location",
    "home",
    "open_store",
    "redact_url",
    "resolve_url",
]

_memory: dict[str, RunStore] = {}
_memory_lock = threading.Lock()
# SQLite stores opened in this process, by URL: (pid, the file's device and inode, the store).
_sqlite: dict[str, tuple[int, tuple[int, int], RunStore]] = {}
# Server (http) stores opened in this process, by URL and token: (pid, the store).
_http: dict[tuple[str, str], tuple[int, RunStore]] = {}


def open_store(url: str | None = None, *, start: Path | None = None) -> RunStore:
    """Open the store at ``url``, or the configured one (see ``location.resolve_url``).

    ``memory://NAME`` stores live as long as the process; the same name gives the same store,
    and so does an ``http(s)://`` URL (a server: one connection pool and spool per process).
    A ``sqlite:`` store is shared too while its file is the one it has open (same device and
    inode, in the same process): no connection is opened and no schema checked again per call.
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
        return _sqlite_store(parsed.target, resolved)
    if parsed.scheme in ("http", "https"):
        return _http_store(resolved)
    from runyard.stores.postgres import PostgresStore

    return PostgresStore(parsed.target)


def _sqlite_store(target: str, url: str) -> RunStore:
    import os

    from runyard.stores.sqlite import SqliteStore

    pid = os.getpid()
    with _memory_lock:
        known = _sqlite.get(url)
    if known is not None and known[0] == pid:
        store = known[2]
        assert isinstance(store, SqliteStore)
        # The file must still be the one the store's open connection holds (a removed file's
        # inode stays taken while it is open, so a new file at that path has another one).
        if store.connected() and _identity(store.path) == known[1]:
            return store
    store = SqliteStore(target, url=url)
    identity = _identity(store.path)
    if identity is not None:
        with _memory_lock:
            _sqlite[url] = (pid, identity, store)
    return store


def _http_store(url: str) -> RunStore:
    """One ``HttpStore`` per process, URL and token (the token in use is looked up each
    time: ``RUNYARD_TOKEN`` or a login may have changed it): one pool, one spool."""
    import os

    from runyard.stores.credentials import origin_of, token_for
    from runyard.stores.http import HttpStore

    origin, in_url = origin_of(url)
    key = (url, token_for(origin, in_url))
    with _memory_lock:
        known = _http.get(key)
        if known is None or known[0] != os.getpid():  # (a closed one reconnects when used)
            known = _http[key] = (os.getpid(), HttpStore(url, token=key[1]))
        return known[1]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino
