"""A run's data catalog: the files it wrote (stage ``put``) and read (stage ``get``).

The bytes go to the blob store by their SHA-256; the run store keeps one catalog entry per
(name, stage) naming the hash and size. Fetching writes the file back atomically under a
destination folder after checking its hash, and refuses any name that would land outside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from runyard.blobs import BlobRef, BlobStore
from runyard.errors import IntegrityError, NotFoundError, ValidationError
from runyard.model import Artifact, Stage
from runyard.model import validate as check
from runyard.stores import RunStore


def save_file(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    path: Path | str,
    name: str | None = None,
    category: str | None = None,
    step: str | None = None,
) -> Artifact:
    """Keep the file at ``path`` as an output of the run (named after the file by default)."""
    name = Path(path).name if name is None else name
    return _record(store, blobs, run_id, name, lambda: blobs.put_file(path),
                   Stage.PUT, category, step)


def save_bytes(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    data: bytes,
    name: str,
    category: str | None = None,
    step: str | None = None,
) -> Artifact:
    """Keep ``data`` as an output of the run under ``name``."""
    return _record(store, blobs, run_id, name, lambda: blobs.put_bytes(data),
                   Stage.PUT, category, step)


def save_stream(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    stream: IO[bytes],
    name: str,
    category: str | None = None,
    step: str | None = None,
) -> Artifact:
    """Keep everything read from the binary ``stream`` as an output of the run."""
    return _record(store, blobs, run_id, name, lambda: blobs.put_stream(stream),
                   Stage.PUT, category, step)


def record_get(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    path: Path | str,
    name: str | None = None,
    category: str | None = None,
    step: str | None = None,
) -> Artifact:
    """Record that the run read the file at ``path`` as an input (stage ``get``).

    The content is kept in the blob store too, so the exact input can be fetched again when
    the run is reproduced; identical inputs share one blob.
    """
    name = Path(path).name if name is None else name
    return _record(store, blobs, run_id, name, lambda: blobs.put_file(path),
                   Stage.GET, category, step)


def _record(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    name: str,
    put: Callable[[], BlobRef],
    stage: Stage,
    category: str | None,
    step: str | None,
) -> Artifact:
    check.artifact_name(name)
    if step is not None:
        check.step_name(step)
    store.get_run(run_id)  # RunNotFound before any bytes are written
    ref = put()
    artifact = Artifact(name, ref.digest, ref.size, stage, time.time(), step, category)
    store.add_artifact(run_id, artifact)
    return artifact


def find_artifact(
    store: RunStore, run_id: str, name: str, stage: Stage | None = None
) -> Artifact:
    """The catalog entry ``name`` of the run; with no ``stage``, an output before an input."""
    found = {a.stage: a for a in store.list_artifacts(run_id) if a.name == name}
    for wanted in (Stage.PUT, Stage.GET) if stage is None else (Stage(stage),):
        if wanted in found:
            return found[wanted]
    which = "" if stage is None else f" {Stage(stage).value}"
    raise NotFoundError(f"run {run_id} has no{which} artifact {name!r}; see its data catalog")


def target_in(dest_dir: Path | str, name: str) -> Path:
    """Where artifact ``name`` lands under ``dest_dir``; ``ValidationError`` if outside it."""
    check.artifact_name(name)
    root = Path(dest_dir).resolve()
    target = (root / name).resolve()
    if target == root or not target.is_relative_to(root):
        raise ValidationError(
            f"artifact {name!r} would be written outside {root}; refusing to fetch it"
        )
    return target


def fetch_artifact(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    name: str,
    dest_dir: Path | str,
    stage: Stage | None = None,
) -> Path:
    """Write artifact ``name`` to ``dest_dir/<name>`` atomically, checking its hash and size.

    Returns the path written. ``IntegrityError`` if the stored bytes do not match the catalog.
    """
    artifact = find_artifact(store, run_id, name, stage)
    target = target_in(dest_dir, artifact.name)
    _check_size(blobs, artifact)
    return blobs.copy_to(artifact.hash, target)


def open_artifact(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    name: str,
    stage: Stage | None = None,
) -> BinaryIO:
    """A binary file to read artifact ``name``; reading it to the end checks its hash."""
    artifact = find_artifact(store, run_id, name, stage)
    _check_size(blobs, artifact)
    return blobs.open(artifact.hash, verify=True)


def read_artifact(
    store: RunStore,
    blobs: BlobStore,
    run_id: str,
    name: str,
    stage: Stage | None = None,
) -> bytes:
    """The whole content of artifact ``name``, hash checked."""
    with open_artifact(store, blobs, run_id, name, stage) as handle:
        return handle.read()


def _check_size(blobs: BlobStore, artifact: Artifact) -> None:
    size = blobs.size(artifact.hash)
    if size != artifact.size:
        raise IntegrityError(
            f"artifact {artifact.name!r} should be {artifact.size} bytes but its blob "
            f"{artifact.hash} has {size}; the blob store is damaged"
        )

