"""Writing a version's files into a folder: a job's work folder, or ``version restore``.

Every file is a copy of its blob (``copy_file_range``: in the kernel, a reflink where the file
system can), never a hard link: a job could ``chmod`` a shared inode and change the blob.
Nothing is written outside the destination: each folder on the way is made (a link or file
in the way, left by an earlier content of the folder, is replaced, never followed), each file
is written to a temporary file beside it and renamed over its place, and links are made last,
so no file is ever written through one. Modes are kept; ``read_only`` takes the write bits
off the files (the folders stay writable, for outputs).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import ConflictError, IntegrityError, ValidationError
from runyard.recording.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    from runyard.core.context import StoreContext

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_STEP = 1 << 30


def materialize(context: StoreContext, manifest: Manifest, dest: Path, *,
                read_only: bool) -> None:
    """Write the files of ``manifest`` under ``dest`` (made if need be); see the module doc."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = str(dest.resolve())
    links, made = [], {root}
    for path, entry in sorted(manifest.items()):
        if entry.is_link:
            links.append((path, entry))
            continue
        parent = _folder(root, path, made)
        _write_file(context, entry, parent, path.rsplit("/", 1)[-1], read_only)
    for path, entry in links:
        parent = _folder(root, path, made)
        with context.blobs.open(entry.sha256) as handle:
            target = os.fsdecode(handle.read())
        _place(parent, path.rsplit("/", 1)[-1], partial(os.symlink, target))


def restore(context: StoreContext, ref: str, dest: Path, *, force: bool = False) -> Path:
    """Write version ``ref`` into ``dest`` (a new or empty folder, unless ``force``)."""
    from runyard.recording.versions import get_version, read_manifest

    manifest = read_manifest(context, get_version(context, ref))
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise ValidationError(f"{str(dest)!r} is not a folder; restore into a new or "
                                  "empty folder")
        if not force and any(dest.iterdir()):
            raise ConflictError(f"{str(dest)!r} is not empty; restore into an empty folder "
                                "or pass --force to overwrite what it holds")
    materialize(context, manifest, dest, read_only=False)
    return dest


def _folder(root: str, path: str, made: set[str]) -> str:
    """The folder that holds ``path`` under ``root``, made (and anything in its way that
    is not a real folder replaced) as need be; ``made``: the folders made or checked."""
    folder = root
    for part in path.split("/")[:-1]:
        folder = os.path.join(folder, part)
        if folder in made:
            continue
        made.add(folder)
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            os.mkdir(folder)
            continue
        if not stat.S_ISDIR(info.st_mode):  # a file or a link in the way: never followed
            os.unlink(folder)
            os.mkdir(folder)
    return folder


def _write_file(context: StoreContext, entry: FileEntry, parent: str, name: str,
                read_only: bool) -> None:
    mode = entry.mode & ~0o222 if read_only else entry.mode

    def write(temp: str) -> None:
        with context.blobs.open(entry.sha256) as source:
            out = os.open(temp, _CREATE, 0o600)
            try:
                copied = _copy(source.fileno(), out, entry.size)
                os.fchmod(out, mode)
            finally:
                os.close(out)
        if copied != entry.size:
            raise IntegrityError(f"blob {entry.sha256} holds {copied} bytes, not "
                                 f"{entry.size}; the blob store is damaged")

    _place(parent, name, write)


def _copy(src: int, dst: int, size: int) -> int:
    """Copy ``src`` into ``dst`` in the kernel (by a buffer where it cannot); bytes copied."""
    done = 0
    try:
        while (n := os.copy_file_range(src, dst, _STEP)) > 0:
            done += n
        return done
    except OSError:
        if done:
            raise
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)
        done += len(chunk)
    return done


def _place(parent: str, name: str, make: Callable[[str], object]) -> None:
    """Make ``name`` in ``parent`` by ``make(temp)`` and renaming it over what is there
    (a folder in the way is refused: restore never deletes a folder's content)."""
    temp = os.path.join(parent, f".runyard-tmp-{os.urandom(6).hex()}")
    target = os.path.join(parent, name)
    try:
        make(temp)
        if os.path.isdir(target) and not os.path.islink(target):
            raise ConflictError(f"{target!r} is a folder where the version has a file; "
                                "remove it or restore into an empty folder")
        os.replace(temp, target)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
