"""The store context: the run store, its blob store and its registry, opened once.

Every layer that needs a store takes a ``StoreContext`` instead of re-deriving folders from a
URL string: ``.store`` (the ``RunStore``), ``.blobs`` (the ``BlobStore``), ``.registry``
(codespecs and buffers, kept in the run store). It is opened from a URL or the configuration
(``open_context``) and cached per process (and per ``fork``): the one process-level cache of
what a store URL opens (``open_store`` still shares SQLite connections and memory stores).

A context pickles as its configuration (the URL and the blob folder), so a runtime in another
process opens the same store and blobs. A store with a folder keeps its blobs beside its
files; one with no local folder (PostgreSQL) takes its blob folder from configuration
(``RUNYARD_BLOBS``, ``blobs:`` in ``runyard.yaml``): asking for ``.blobs`` without one raises
a ConfigError that says so, never falling back on the working directory. A server's
(``http(s)://``) blobs are a ``RemoteBlobStore``: a local cache (``RUNYARD_BLOBS``, else the
user's cache folder per server) that uploads what is put and downloads what is read.
"""

from __future__ import annotations

import atexit
import os
import threading
from contextlib import suppress
from functools import cached_property
from pathlib import Path
from typing import Any

from runyard.blobs import BlobStore
from runyard.core.registry import Registry
from runyard.errors import ConfigError
from runyard.stores import RunStore, blob_location, open_store, resolve_url
from runyard.stores.location import BLOBS_ENV

_lock = threading.Lock()
_opened: dict[tuple[Any, ...], StoreContext] = {}
_pid = os.getpid()


class StoreContext:
    """One store's run store, blob store and registry; see the module docstring."""

    def __init__(self, url: str, blobs: Path | str | None = None,
                 store: RunStore | None = None) -> None:
        self.url = url
        self._blob_root = None if blobs is None else Path(blobs)
        if store is not None:
            self.__dict__["store"] = store

    def __repr__(self) -> str:
        return f"StoreContext({self.url!r}, blobs={self._blob_root})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its configuration: the other process opens its own connections."""
        return open_context, (self.url, self._known_blob_root())

    @cached_property
    def store(self) -> RunStore:
        return open_store(self.url)

    @property
    def blob_root(self) -> Path:
        """The blob folder (configured, or beside the store's files); ConfigError if none."""
        if self._blob_root is None:
            self._blob_root = blob_location(self.url)
        return self._blob_root

    @cached_property
    def blobs(self) -> BlobStore:
        """The blob store; a server's (an ``http(s)://`` store's ``blob_client``) through a
        local cache that writes through to it and fetches what it lacks."""
        server = getattr(self.store, "blob_client", None) if _is_server(self.url) else None
        if server is not None:
            from runyard.blobs.remote import RemoteBlobStore

            return RemoteBlobStore(self.blob_root, server)
        return BlobStore(self.blob_root)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.store)

    def work_dir(self, run_id: str) -> Path:
        """A run's local work folder (named pipes, working directories), beside the blobs."""
        return self.blob_root.parent / "work" / run_id

    def close(self) -> None:
        """Release the run store's connections (it reconnects if used again)."""
        store = self.__dict__.get("store")
        if store is not None:
            store.close()

    def _known_blob_root(self) -> str | None:
        try:
            return str(self.blob_root)
        except ConfigError:  # (none configured here: the other process may have one)
            return None


def _is_server(url: str) -> bool:
    return url.split(":", 1)[0].lower() in ("http", "https")


def blobs_shown(url: str) -> str:
    """Where the blobs of the store at ``url`` are, as ``store info`` shows it."""
    try:
        return str(open_context(url).blob_root)
    except ConfigError:
        return f"(not set: use `blobs:` in runyard.yaml or {BLOBS_ENV})"


def open_context(url: str | None = None, blobs: Path | str | None = None, *,
                 store: RunStore | None = None, start: Path | None = None) -> StoreContext:
    """The context of the store at ``url`` (else the configured one; see
    ``runyard.stores.location``), its blobs at ``blobs`` (else configured or beside it).

    The same settings give the same object in a process; ``store``, an open run store of that
    URL, is used if the context has not opened one yet."""
    resolved = resolve_url(url, start)
    key = _key(resolved, blobs, start)
    with _lock:
        _forget_after_fork()
        found = _opened.get(key)
        if found is None:
            if not _opened:
                atexit.register(close_all)
            found = _opened[key] = StoreContext(resolved, blobs, store)
        elif store is not None:
            found.__dict__.setdefault("store", store)
    return found


def close_all() -> None:
    """Close the run stores of this process's contexts (at exit; they reopen if used)."""
    with _lock:
        opened = list(_opened.values()) if _pid == os.getpid() else []
    for context in opened:
        with suppress(Exception):  # at exit there is no one left to raise to
            context.close()


def context_of(store: RunStore) -> StoreContext:
    """The context of an open run store (for code that was handed only the store)."""
    return open_context(store.url, store=store)


def _key(url: str, blobs: Path | str | None, start: Path | None) -> tuple[Any, ...]:
    """What a context's settings depend on: the URL, the given or configured blob folder,
    and (for the configuration and a memory store's home) where it is looked up from."""
    where = None if blobs is not None else (
        os.environ.get(BLOBS_ENV), os.environ.get("RUNYARD_CONFIG"), str(start or Path.cwd()))
    return url, None if blobs is None else str(blobs), where


def _forget_after_fork() -> None:
    """A forked child opens its own contexts (the parent's hold its connections)."""
    global _pid
    if _pid != os.getpid():
        _opened.clear()
        _pid = os.getpid()
