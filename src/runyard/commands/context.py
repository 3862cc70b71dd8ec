"""Everything a command run needs, opened from one store URL: runs, registry, blobs, work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runyard.blobs import BlobStore
from runyard.commands.registry import Registry
from runyard.errors import ConfigError
from runyard.stores import RunStore, blob_root, open_store
from runyard.stores.location import parse_url


@dataclass
class Context:
    url: str
    store: RunStore
    registry: Registry
    blobs: BlobStore

    @property
    def root(self) -> Path:
        return self.registry.root

    def work_dir(self, run_id: str) -> Path:
        """The run's work folder: its replicas' named pipes and working directories."""
        return self.root / "work" / run_id

    def close(self) -> None:
        self.registry.close()
        self.store.close()


def open_context(url: str, store: RunStore | None = None) -> Context:
    """The registry and blob store that belong with the run store at ``url``."""
    blobs_at = blob_root(check_url(url))
    return Context(url, store or open_store(url), Registry(blobs_at.parent), BlobStore(blobs_at))


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
