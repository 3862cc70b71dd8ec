"""What a run ran: the identity of its code (git) and of its environment (Python, packages).

``code_identity`` asks ``git`` about the working directory: the commit, the branch, whether
tracked files differ from the commit, and the URL of the remote (without any credentials in
it). Outside a git repository, or with no ``git`` installed, it returns ``None``. Answers are
cached per directory for ``CACHE_S`` seconds, so a parameter scan of many runs asks once.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CACHE_S = 60.0
GIT_TIMEOUT_S = 10.0

_lock = threading.Lock()
_code_cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
_environment: dict[str, Any] | None = None


def _git(cwd: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_identity(cwd: Path | str | None = None) -> dict[str, Any] | None:
    """``{commit, branch, dirty, remote}`` of the git checkout at ``cwd``, or ``None``."""
    key = os.fspath(cwd) if cwd else os.getcwd()  # as given: no path resolved on a hit
    with _lock:
        cached = _code_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    found = _ask_git(Path(key).resolve())
    with _lock:
        _code_cache[key] = (time.monotonic(), found)
    return found


def _ask_git(folder: Path) -> dict[str, Any] | None:
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    info: dict[str, Any] = {"commit": None, "branch": None, "dirty": False, "remote": None}
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            info["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            info["branch"] = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            info["dirty"] = True
    info["remote"] = _remote(folder, info["branch"])
    return info


def _remote(folder: Path, branch: str | None) -> str | None:
    """The URL of the branch's upstream remote, else of ``origin``, else of any remote."""
    names: list[str] = []
    if branch:
        upstream = _git(folder, "config", "--get", f"branch.{branch}.remote")
        if upstream:
            names.append(upstream.strip())
    listed = _git(folder, "remote") or ""
    names += ["origin", *listed.split()]
    for name in names:
        if name in listed.split():
            url = _git(folder, "remote", "get-url", name)
            if url:
                return without_credentials(url.strip())
    return None


def without_credentials(url: str) -> str:
    """``url`` with any user password or token removed (``https://tok@host/x`` → host/x)."""
    if "://" not in url:
        return url  # scp-like ``git@host:path`` carries no secret
    parts = urlsplit(url)
    if parts.password is None and (parts.username is None or parts.scheme == "ssh"):
        return url
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.scheme == "ssh" else host
    return urlunsplit(parts._replace(netloc=netloc))


def environment() -> dict[str, Any]:
    """Python version and implementation, platform, and installed packages (cached)."""
    global _environment
    with _lock:
        if _environment is None:
            _environment = {
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "executable": sys.executable,
                "platform": platform.platform(),
                "packages": _packages(),
            }
        return dict(_environment)


def _packages() -> dict[str, str]:
    """Installed distributions by normalised name, first on ``sys.path`` first.

    Names and versions come from the ``name-version.dist-info`` folder names (the wheel
    layout), which is a directory listing per path entry instead of parsing every package's
    metadata (~2 ms each); a folder that does not name its version is read in full."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # not a folder (a zip), or gone
            continue
        for folder in names:
            stem, dot, kind = folder.rpartition(".")
            if not dot or kind not in ("dist-info", "egg-info"):
                continue
            name, dash, version = stem.partition("-")
            if not dash or not version or "-" in version:
                name, version = _read_metadata(os.path.join(entry, folder))
            if name:
                found.setdefault(_normalised(name), version)
    return dict(sorted(found.items()))


def _read_metadata(path: str) -> tuple[str, str]:
    from importlib.metadata import PathDistribution

    dist = PathDistribution(Path(path))
    try:
        return str(dist.metadata["Name"] or ""), str(dist.version or "")
    except (OSError, ValueError, TypeError):  # a broken install: skip it
        return "", ""


def _normalised(name: str) -> str:
    """The PEP 503 form of a distribution name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()
