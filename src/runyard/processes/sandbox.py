"""The sandbox executor's bubblewrap options, and the private folders a job works in.

A sandboxed job runs in user, pid, network, IPC and UTS namespaces of its own, with **no
capabilities** (``--cap-drop ALL``; no further user namespaces): even when runyard runs as root,
inside the sandbox it cannot ``mknod``, ``mount``, or open host files by handle
(``open_by_handle_at`` needs ``CAP_DAC_READ_SEARCH`` in the host's namespace). Its user is mapped
to the caller's, so what it writes belongs to the caller outside. The system and the Python
environment are read-only; ``/tmp`` is private; only the work folder is writable.

A job may leave a setuid file in its work folder (the owner may set that bit, and it owns its
folder). So the folder above it, which the job cannot reach or change, is made ``0700``: no other
host user can reach what the job left (``private_folder``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

SANDBOX_ID = 1000  # the job's uid and gid inside the sandbox when the caller is root
TOPS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64")


def sandbox_prefix(work: Path, *, read_only: Sequence[str] = (), network: bool = False,
                   inside: str | None = None) -> list[str]:
    """bwrap options and ``--``: the command follows. ``read_only``: more folders the job may
    read (a recorded run's environment); ``network``: keep the host's network (127.0.0.1);
    ``inside``: where the job sees its work folder (default: where it is), so that paths a
    job writes down are the same in every run."""
    where = str(work) if inside is None else inside
    opts = ["bwrap", *_identity(), "--ro-bind", "/usr", "/usr"]
    for top in TOPS:
        if os.path.islink(top):
            opts += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            opts += ["--ro-bind", top, top]
    opts += ["--ro-bind", "/etc", "/etc", "--tmpfs", "/tmp"]
    # after the tmpfs: a root under /tmp stays visible
    for root in dict.fromkeys([*python_roots(), *read_only]):
        opts += ["--ro-bind", root, root]
    opts += ["--bind", str(work), where, "--chdir", where,
             "--proc", "/proc", "--dev", "/dev", *([] if network else ["--unshare-net"]),
             "--unshare-pid",
             "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
             "--setenv", "HOME", where, "--setenv", "TMPDIR", "/tmp", "--"]
    return opts


def _identity() -> list[str]:
    """A user namespace with no capabilities; the job's ids map to the caller's."""
    uid, gid = os.getuid(), os.getgid()
    inner_uid = SANDBOX_ID if uid == 0 else uid
    inner_gid = SANDBOX_ID if gid == 0 else gid
    nested = ["--disable-userns"] if _bwrap_knows("--disable-userns") else []
    return ["--unshare-user", *nested, "--uid", str(inner_uid), "--gid", str(inner_gid),
            "--cap-drop", "ALL"]


@functools.cache
def _bwrap_knows(option: str) -> bool:
    """Whether this bubblewrap has ``option`` (``--disable-userns`` came with 0.8)."""
    import subprocess

    try:
        usage = subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return option in usage


def python_roots() -> list[str]:
    """The virtual environment and the Python it was made from, unless under /usr."""
    roots: list[str] = []
    for prefix in (sys.prefix, sys.base_prefix):
        for path in (prefix, os.path.realpath(prefix)):
            if path not in roots and not path.startswith("/usr") and os.path.isdir(path):
                roots.append(path)
    return roots


def private_folder(path: Path, levels: int = 2) -> Path:
    """Make ``path`` (and its parents, ``levels`` in all) folders only their owner can enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in [path, *path.parents][:levels]:
        if folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)
    return path
