"""The workspace a version snapshots: where it is, what is left out, what it holds now.

A workspace is the folder holding ``runyard.yaml`` (looked for upwards from the working
directory), a folder given with ``--workspace``, or else the working directory. Left out of
every scan: ``.runyard/`` and ``runs/`` at its top, ``.git/`` anywhere, virtual environments
(a folder holding ``pyvenv.cfg``), and the patterns of its ``.runyardignore`` (gitignore
syntax, read with ``pathspec``).

The scan never follows a symbolic link: a link is reported as a link (kept as one by the
version), so nothing outside the workspace is read through it. Fifos, sockets and devices are
skipped with a note, as are names that are not UTF-8 (a manifest is JSON text).

The stat cache (``workspaces/<hash of the workspace's path>.json`` beside the blob folder
whose digests it names, replaced atomically; never inside the workspace, where a ``.runyard``
folder would become the nearest store home) maps each path to the size, ``mtime_ns`` and inode
it had when it was hashed, and its digest, so a file that has not changed is not read again.
A file changed less than ``RACY_NS`` before the scan that cached it is not cached (its next
change could keep the same size and mtime within the clock's tick): it is read again next
time. The cache is replaced atomically but not
durably (see ``save_cache``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import MissingDependencyError, NotFoundError, ValidationError

CONFIG_FILE = "runyard.yaml"
IGNORE_FILE = ".runyardignore"
TOP_IGNORED = frozenset({".runyard", "runs"})
ALWAYS_IGNORED = frozenset({".git"})
VENV_MARK = "pyvenv.cfg"
CACHE_FOLDER = "workspaces"  # beside the blob folder: the stat caches of the workspaces
RACY_NS = 1_000_000_000
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_HEX64 = re.compile(r"[0-9a-f]{64}")

CacheEntry = tuple[int, int, int, str]  # size, mtime_ns, inode, sha256


def find_workspace(path: Path | str | None = None) -> Path:
    """The workspace: ``path`` if given (it must be a folder), else the nearest folder up
    from the working directory holding ``runyard.yaml``, else the working directory."""
    if path is not None:
        given = Path(path).expanduser()
        if not given.exists():
            raise NotFoundError(f"workspace {str(given)!r} does not exist; give an existing "
                                "folder with --workspace")
        if not given.is_dir():
            raise ValidationError(f"workspace {str(given)!r} is not a folder; give a folder "
                                  "with --workspace")
        return given.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


@dataclass(slots=True)
class Found:
    """One entry of a scan: a regular file or a symbolic link, and its ``lstat``."""

    path: str  # relative, POSIX
    info: os.stat_result

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.info.st_mode)


@dataclass
class Scan:
    files: list[Found] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one note per entry left out


def ignore_rules(workspace: Path) -> Callable[[str], bool] | None:
    """Whether a relative path (a folder's ends with ``/``) matches ``.runyardignore``;
    ``None`` when there is no such file."""
    try:
        lines = (workspace / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read {workspace / IGNORE_FILE}: {exc}") from None
    try:
        import pathspec
    except ImportError:
        raise MissingDependencyError("pathspec", "record") from None
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:
        raise ValidationError(f"{workspace / IGNORE_FILE}: {exc}; fix or remove that "
                              "line (gitignore syntax)") from None
    return spec.match_file


def scan(workspace: Path, exclude: Iterable[Path] = ()) -> Scan:
    """Every file and link of ``workspace`` a version keeps (see the module docstring);
    also left out: the folders ``exclude`` names (the store's own, if inside)."""
    found = Scan()
    rules = ignore_rules(workspace)
    inside = {rel.as_posix() + "/" for rel in _inside(workspace, exclude)}
    ignored = rules
    if inside:
        def ignored(rel: str) -> bool:
            return rel in inside or (rules is not None and rules(rel))
    try:
        root = os.open(workspace, DIR_FLAGS)
    except OSError as exc:
        raise ValidationError(f"cannot open the workspace {str(workspace)!r}: "
                              f"{exc.strerror}") from None
    try:
        _walk(root, "", ignored, found)
    finally:
        os.close(root)
    found.files.sort(key=lambda f: f.path)
    return found


def _inside(workspace: Path, folders: Iterable[Path]) -> list[Path]:
    """Those of ``folders`` below ``workspace``, relative to it."""
    found = []
    for folder in folders:
        with suppress(OSError, ValueError):
            rel = Path(folder).resolve().relative_to(workspace.resolve())
            if rel.parts:
                found.append(rel)
    return found


def _walk(folder: int, prefix: str, ignored: Callable[[str], bool] | None,
          found: Scan) -> None:
    """Add what the open ``folder`` holds (its path relative to the workspace: ``prefix``)
    to ``found``. Each folder below is opened from its parent without following a link, so a
    folder swapped for a link meanwhile is never walked into. (Appends, not a generator:
    ``yield from`` at every level cost a third of the scan of 10,000 files.)"""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        found.skipped.append(f"{prefix or '.'}: cannot list it ({exc.strerror})")
        return
    if prefix and any(e.name == VENV_MARK for e in entries):
        return  # a virtual environment
    files = found.files
    for entry in entries:
        name = entry.name
        rel = prefix + name
        if not rel.isascii() and not _utf8(rel):
            found.skipped.append(f"{rel!a}: its name is not UTF-8")
            continue
        if entry.is_dir(follow_symlinks=False):
            if not _dir_left_out(name, prefix, rel, ignored):
                _walk_into(folder, name, rel + "/", ignored, found)
            continue
        if ignored is not None and ignored(rel):
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            files.append(Found(rel, info))
        elif stat.S_ISDIR(info.st_mode):  # (replaced by a folder since it was listed)
            found.skipped.append(f"{rel!r}: changed while the workspace was scanned")
        else:
            found.skipped.append(f"{rel!r}: not a regular file, folder or link "
                                 f"({_type(info)})")


def _walk_into(parent: int, name: str, prefix: str, ignored: Callable[[str], bool] | None,
               found: Scan) -> None:
    try:
        folder = os.open(name, DIR_FLAGS, dir_fd=parent)
    except OSError as exc:  # (ELOOP, ENOTDIR: it became a link or a file since listed)
        found.skipped.append(f"{prefix!r}: cannot open it ({exc.strerror})")
        return
    try:
        _walk(folder, prefix, ignored, found)
    finally:
        os.close(folder)


class Folders:
    """The folders of a workspace, each opened from the workspace down without following a
    link (``fd``), so a file is read where the scan found it, never through a folder swapped
    for a link. The last one opened is kept (the scan's order keeps a folder's files
    together)."""

    def __init__(self, workspace: str) -> None:
        self.root = os.open(workspace, DIR_FLAGS)
        self._path, self._fd = "", self.root

    def fd(self, folder: str) -> int:
        """The open folder ``folder`` (relative, POSIX; "" for the workspace): OSError if
        it cannot be reached without following a link."""
        if folder == self._path:
            return self._fd
        self._release()
        fd = self.root
        try:
            for part in folder.split("/") if folder else ():
                inner = os.open(part, DIR_FLAGS, dir_fd=fd)
                if fd != self.root:
                    os.close(fd)
                fd = inner
        except OSError:
            if fd != self.root:
                os.close(fd)
            raise
        self._path, self._fd = folder, fd
        return fd

    def _release(self) -> None:
        if self._fd != self.root:
            os.close(self._fd)
        self._path, self._fd = "", self.root

    def close(self) -> None:
        self._release()
        os.close(self.root)


def _dir_left_out(name: str, prefix: str, rel: str,
                  ignored: Callable[[str], bool] | None) -> bool:
    if name in ALWAYS_IGNORED or (not prefix and name in TOP_IGNORED):
        return True
    return ignored is not None and ignored(rel + "/")


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type(info: os.stat_result) -> str:
    mode = info.st_mode
    for test, what in ((stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return f"mode {mode:o}"


# -- the stat cache ---------------------------------------------------------------------------
def cache_path(workspace: Path, home: Path) -> Path:
    """Where the stat cache of ``workspace`` for the blobs under ``home`` is kept."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(workspace))).hexdigest()[:32]
    return home / CACHE_FOLDER / f"{key}.json"


def load_cache(workspace: Path, home: Path) -> dict[str, Any]:
    """The stat cache of ``workspace`` (empty if missing or unreadable: it is only a cache).
    Its entries are checked when used (``cached_digest``), not all when read."""
    try:
        raw = json.loads(cache_path(workspace, home).read_bytes())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def cached_digest(cache: dict[str, Any], item: Found) -> str | None:
    """The digest the cache holds for ``item`` if it has not changed since, else None (and
    None for an entry that is not [size, mtime_ns, inode, digest]: a digest names a blob's
    path, so one that is not 64 hex digits is never believed)."""
    hit = cache.get(item.path)
    info = item.info
    if type(hit) is not list or len(hit) != 4 or hit[0] != info.st_size \
            or hit[1] != info.st_mtime_ns or hit[2] != info.st_ino:
        return None
    digest = hit[3]
    return digest if type(digest) is str and _HEX64.fullmatch(digest) else None


def cache_entry(info: os.stat_result, digest: str, started_ns: int) -> CacheEntry | None:
    """What the cache keeps for a file read with ``info`` (None if changed too recently)."""
    if info.st_mtime_ns >= started_ns - RACY_NS:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino, digest


def save_cache(workspace: Path, home: Path, cache: dict[str, CacheEntry]) -> None:
    """Replace the stat cache atomically (a temporary file renamed over it), not durably: a
    cache lost in a crash only costs reading the files again (and the fsync cost 10-25 ms
    of a second version's 0.2 s here). A failure (a read-only workspace) is ignored."""
    target = cache_path(workspace, home)
    temp = target.with_name(f".tmp-{target.name}-{os.urandom(6).hex()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(cache, separators=(",", ":")), encoding="utf-8")
        os.replace(temp, target)
    except (OSError, ValueError):
        with suppress(OSError):
            temp.unlink()
