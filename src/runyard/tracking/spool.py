"""The offline spool: where runs opened with ``offline=True`` are written, for ``sync`` later.

Under ``<home>/offline/`` (the nearest ``.runyard`` folder, see ``runyard.stores.home``):

    runs/            a ``chunked:`` run store holding every offline run (safe for several
                     processes at once, append-only metric and event files)
    blobs/<run id>/  the files each run saved, one blob store per run, so a synced run's
                     files are removed with it and nothing another run uses
    sync.lock        held by the one ``runyard sync`` allowed at a time

Opening an offline run touches nothing else: not the configured store, not the network.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runyard.blobs import BlobStore
from runyard.errors import ConfigError, ConflictError
from runyard.stores import RunStore, home, open_store

OFFLINE_DIR = "offline"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


def offline_from_env() -> bool:
    """Whether ``RUNYARD_OFFLINE`` asks for offline runs (``1``/``true``/``yes``/``on``)."""
    value = os.environ.get("RUNYARD_OFFLINE", "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ConfigError(f"RUNYARD_OFFLINE={value!r} is not understood; set it to 1 or 0")


class Spool:
    """The offline spool at ``root`` (default: ``<home>/offline``)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root else home() / OFFLINE_DIR

    @property
    def url(self) -> str:
        return f"chunked://{self.root / 'runs'}"

    def exists(self) -> bool:
        return (self.root / "runs").is_dir()

    def open(self) -> RunStore:
        """The spool's run store (created on first use)."""
        return open_store(self.url)

    def blobs(self, run_id: str) -> BlobStore:
        return BlobStore(self.root / "blobs" / run_id)

    @contextmanager
    def sync_lock(self) -> Iterator[None]:
        """Hold the spool's sync lock, or raise ``ConflictError`` if another sync holds it."""
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / "sync.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ConflictError(
                f"another `runyard sync` is running on the offline spool {self.root}; "
                "wait for it to finish, then sync again"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def remove(self, store: RunStore, run_id: str) -> None:
        """Delete a run from the spool: its record first, then its files."""
        store.delete_run(run_id)
        self._discard(self.root / "blobs" / run_id)

    def remove_orphan_blobs(self, store: RunStore) -> int:
        """Remove file folders whose run is gone (a sync killed between the two deletes)."""
        folder = self.root / "blobs"
        if not folder.is_dir():
            return 0
        seen = [p for p in folder.iterdir() if p.is_dir()]
        present = {run.id for run in store.list_runs()}  # after: a run precedes its folder
        orphans = [p for p in seen if p.name not in present]
        import shutil  # only here: every Run() imports this module to read RUNYARD_OFFLINE

        for path in orphans:
            if path.name.startswith(".trash-"):
                shutil.rmtree(path, ignore_errors=True)  # left by a killed removal
            else:
                self._discard(path)
        return len(orphans)

    def _discard(self, path: Path) -> None:
        if not path.exists():
            return
        trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
        path.rename(trash)  # atomic: a half-removed folder never looks like a run's files
        import shutil

        shutil.rmtree(trash, ignore_errors=True)
