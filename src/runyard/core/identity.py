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


def _git(cwd: Path, *commands: tuple[str, ...]) -> list[str | None]:
    """The output of each ``git`` command (``None`` where it failed), all run at once: the
    first ``Run()`` in a folder waits for the slowest instead of for each in turn."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    started: list[subprocess.Popen[str]] = []
    try:
        for args in commands:
            started.append(subprocess.Popen(
                ["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            ))
    except OSError:  # no git here (or no such folder)
        for proc in started:
            proc.kill()
            proc.communicate()
        return [None] * len(commands)
    return [_output(proc) for proc in started]


def _output(proc: subprocess.Popen[str]) -> str | None:
    try:
        out, _ = proc.communicate(timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


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
    """Two ``git`` commands, run together (four in turn cost the first run 14 ms, issue 16):
    ``status`` names the commit, the branch and its upstream and shows changes; ``remote -v``
    gives every remote's URL (its fetch URL is what ``git remote get-url`` prints)."""
    status, remotes = _git(folder, ("status", "--porcelain=v2", "--branch",
                                    "--untracked-files=no"), ("remote", "-v"))
    if status is None:
        return None
    info: dict[str, Any] = {"commit": None, "branch": None, "dirty": False, "remote": None}
    upstream = None
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split()[2]
            info["commit"] = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(maxsplit=2)[2]
            info["branch"] = None if head == "(detached)" else head
        elif line.startswith("# branch.upstream "):
            upstream = line.split(maxsplit=2)[2]
        elif line and not line.startswith("#"):
            info["dirty"] = True
    info["remote"] = _remote(_fetch_urls(remotes or ""), upstream)
    return info


def _fetch_urls(listing: str) -> dict[str, str]:
    """Remote name -> fetch URL, from ``git remote -v`` (``name<TAB>url (fetch)``)."""
    urls: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, rest = line.partition("\t")
        url, _, kind = rest.rpartition(" ")
        if kind == "(fetch)" and url:
            urls.setdefault(name, url)
    return urls


def _remote(urls: dict[str, str], upstream: str | None) -> str | None:
    """The URL of the branch's upstream remote (``upstream`` is ``remote/branch``), else of
    ``origin``, else of the first remote."""
    names = sorted(urls, key=len, reverse=True)
    ours = [name for name in names if upstream and upstream.startswith(name + "/")]
    for name in [*ours[:1], "origin", *sorted(urls)]:
        if name in urls:
            return without_credentials(urls[name])
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
