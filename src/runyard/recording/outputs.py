"""A recorded run's outputs: captured by hash, then mirrored read-only in ``runs/<name>/``.

After the entrypoint ends, every regular file of its work folder that the version did not have,
or had with other content, is an output: hashed into the blob store in one batch (durable
before any catalog entry names it) and listed in the run's catalog (stage ``put``), beside
the version's files (stage ``get``). The work folder is the job's: nothing in it is followed
(files are opened with ``O_NOFOLLOW`` and checked to be regular files; links the job made are
noted, not kept).

The mirror ``<workspace>/runs/<run name>/`` holds the outputs (copied from the blobs just put),
``.stdout``, ``.stderr``, ``.entrypoint`` and ``run.json``, read-only. It is made in
``runs/.tmp-<run id>`` and renamed into place, so a ``runs/`` folder is whole or absent however
runyard ends; a temporary folder left by a killed ``record`` is swept by the next one. It is a
view of what the store and the blob store keep durably, so its files are not fsynced one by
one (five fsyncs were ~40 ms of a ~200 ms record here): only the rename is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import RunNotFound, ValidationError
from runyard.fsio import fsync_dir
from runyard.model import Artifact, Stage
from runyard.model import validate as check
from runyard.recording.manifest import Manifest

RESERVED = (".stdout", ".stderr", ".entrypoint", "run.json")
TMP = ".tmp-"
# never follows a link, never waits on a named pipe the job left
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass
class Captured:
    """What the job left: outputs by path (digest, size), and what was not kept, with why."""

    outputs: dict[str, tuple[str, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def capture(context: Any, work: Path, manifest: Manifest) -> Captured:
    """Hash every created or changed file of ``work`` into the blob store (one batch)."""
    found = Captured()
    with context.blobs.batch() as batch:
        for rel, path in _walk(work, found):
            try:
                fd = os.open(path, _OPEN)
            except OSError as exc:
                found.skipped.append(f"{rel}: cannot be read ({exc.strerror or exc})")
                continue
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    found.skipped.append(f"{rel}: not a regular file")
                    continue
                if _unchanged(handle, info.st_size, manifest.get(rel)):
                    continue
                handle.seek(0)
                ref = batch.put_stream(handle)
                found.outputs[rel] = (ref.digest, ref.size)
    return found


def _walk(work: Path, found: Captured) -> Iterator[tuple[str, str]]:
    """(relative posix path, path) of each file under ``work``; links noted and left."""
    root = str(work)

    def unreadable(exc: OSError) -> None:
        found.skipped.append(f"{_rel(root, str(exc.filename), '')}: cannot be listed "
                             f"({exc.strerror or exc})")

    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=False):
        for name in sorted(dirs):
            if os.path.islink(os.path.join(folder, name)):
                found.skipped.append(f"{_rel(root, folder, name)}: a link (not kept)")
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = _rel(root, folder, name)
            why = _bad_name(rel)
            if why is not None:
                found.skipped.append(f"{rel!r}: {why} (not kept)")
                continue
            if os.path.islink(path):
                found.skipped.append(f"{rel}: a link (not kept)")
                continue
            yield rel, path


def _rel(root: str, folder: str, name: str) -> str:
    return os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")


def _bad_name(rel: str) -> str | None:
    """Why ``rel`` cannot name an artifact, or None."""
    try:
        rel.encode("utf-8")
        check.artifact_name(rel)
    except UnicodeEncodeError:
        return "the name is not UTF-8"
    except ValidationError as exc:
        return str(exc)
    return None


def _unchanged(handle: Any, size: int, entry: Any) -> bool:
    if entry is None or entry.is_link or entry.size != size:
        return False
    return bool(hashlib.file_digest(handle, "sha256").hexdigest() == entry.sha256)


def catalog(manifest: Manifest, captured: Captured) -> list[Artifact]:
    """The run's catalog: the version's files as inputs, the outputs."""
    now = time.time()
    inputs = [Artifact(path, entry.sha256, entry.size, Stage.GET, now, None, "input")
              for path, entry in sorted(manifest.items()) if not entry.is_link]
    outputs = [Artifact(path, digest, size, Stage.PUT, now, None, "output")
               for path, (digest, size) in sorted(captured.outputs.items())]
    return inputs + outputs


def mirror(context: Any, runs_root: Path, name: str, run_id: str, captured: Captured,
           logs: Path, extra: dict[str, bytes]) -> Path:
    """Make ``runs_root/name`` (see the module docstring); ``extra``: ``.entrypoint`` and
    ``run.json``'s bytes. Returns the folder."""
    runs_root.mkdir(parents=True, exist_ok=True)
    temp = runs_root / f"{TMP}{run_id}"
    remove_tree(temp)
    temp.mkdir()
    try:
        for rel, (digest, _) in captured.outputs.items():
            if rel in RESERVED:
                continue  # (run.json says so: "not_mirrored")
            target = temp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(context.blobs.path(digest), target)  # (put just now, hashed)
        for stream in ("stdout", "stderr"):
            source = logs / stream
            if source.is_file():
                shutil.copyfile(source, temp / f".{stream}")
            else:
                (temp / f".{stream}").write_bytes(b"")
        for file_name, data in extra.items():
            (temp / file_name).write_bytes(data)
        read_only(temp)
        final = runs_root / name
        _move_aside(final)
        os.rename(temp, final)
        fsync_dir(runs_root)
        return final
    except BaseException:
        remove_tree(temp)
        raise


def _move_aside(final: Path) -> None:
    """A folder already at ``final`` (a run of that name deleted from the store only) is kept
    under another name, never merged or overwritten."""
    if final.exists() or final.is_symlink():
        os.rename(final, final.with_name(f".replaced-{final.name}-{int(time.time())}"))


def read_only(root: Path) -> None:
    """Take the write bits off every file and folder under ``root`` (itself included)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files:  # (only files runyard wrote: no links)
            os.chmod(os.path.join(folder, name), 0o444)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o555)
    os.chmod(root, 0o555)


def remove_tree(path: Path) -> None:
    """Remove a folder that may be read-only (ours, or a job's work folder)."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    for folder, dirs, _ in os.walk(path):
        for name in dirs:
            inner = os.path.join(folder, name)
            if not os.path.islink(inner):  # (a link's target is never touched)
                with contextlib.suppress(OSError):
                    os.chmod(inner, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def sweep_partial(store: Any, runs_root: Path) -> None:
    """Remove the ``.tmp-<id>`` folders of records that ended without finishing one."""
    if not runs_root.is_dir():
        return
    for entry in runs_root.iterdir():
        if entry.name.startswith(TMP):
            run_id = entry.name[len(TMP):]
            if _ended(store, run_id):
                remove_tree(entry)


def _ended(store: Any, run_id: str) -> bool:
    from runyard.core.liveness import refresh

    try:
        run = refresh(store, store.get_run(run_id))
    except RunNotFound:
        return True
    return bool(run.status.is_final or run.status.value == "lost")


def run_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
