"""Where a replica's command executes: ``local`` (a host process) or ``sandbox`` (bubblewrap).

Every replica runs in a new session and process group of its own, and dies with its supervisor
(``PR_SET_PDEATHSIG``); in the sandbox, bubblewrap's own pid namespace takes every process of
the job with it. ``kill_tree`` ends a whole tree: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import ConfigError, ValidationError

if TYPE_CHECKING:  # psutil and subprocess are imported where used: ``run exec`` needs neither
    import subprocess

    import psutil

EXECUTORS = ("local", "sandbox")
CONTAINER_ENGINES = ("docker", "podman")
GRACE_S = 3.0
PR_SET_PDEATHSIG = 1
SANDBOX_NOTE = "in a bubblewrap sandbox on this host"


def check_executor(name: str) -> str:
    """A usable executor name, or a one-line error saying what to use instead."""
    value = name.strip().lower()
    if value in CONTAINER_ENGINES:
        raise ValidationError(
            f"the {value} executor is not available: runyard runs commands with the local or "
            "sandbox executor; a codespec's image is recorded and shown as not used"
        )
    if value not in EXECUTORS:
        raise ValidationError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
    if value == "sandbox" and _which("bwrap") is None:
        raise ConfigError("the sandbox executor needs bubblewrap (bwrap); install it with "
                          "`apt-get install bubblewrap` or scripts/system-deps.sh")
    return value


def image_note(image: str | None, executor: str) -> str | None:
    """What ``run show`` says about a codespec image this executor cannot use."""
    if image is None:
        return None
    where = SANDBOX_NOTE if executor == "sandbox" else "as a process on this host"
    return f"{image} (not used: the {executor} executor runs the command {where})"


def find_program(program: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """The path of ``program`` as the job would find it, or ``None`` if it does not exist."""
    if "/" in program:
        path = cwd / program
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return _which(program, env.get("PATH", os.defpath))


def _which(program: str, path: str | None = None) -> str | None:
    import shutil  # imported where used: ``run exec`` itself needs no process lookups

    return shutil.which(program, path=path)


def argv(executor: str, command: Sequence[str], work: Path) -> list[str]:
    if executor == "sandbox":
        return [*sandbox_prefix(work), "--", *command]
    setpriv = _setpriv()
    if setpriv is not None:  # sets the parent-death signal, then execs the command in place
        return [setpriv, "--pdeathsig", "KILL", "--", *command]
    return list(command)


_setpriv_path: list[str | None] = []


def _setpriv() -> str | None:
    """util-linux ``setpriv``, if installed: it lets a job die with its supervisor without a
    ``preexec_fn``, so the job starts with a cheap vfork instead of a copy of the supervisor."""
    if not _setpriv_path:
        _setpriv_path.append(_which("setpriv"))
    return _setpriv_path[0]


def sandbox_prefix(work: Path) -> list[str]:
    """bwrap options: read-only system and Python, private /tmp, no network, own pids;
    only ``work`` is writable, and it is the working directory."""
    opts = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            opts += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            opts += ["--ro-bind", top, top]
    opts += ["--ro-bind", "/etc", "/etc"]
    for root in python_roots():
        opts += ["--ro-bind", root, root]
    opts += ["--tmpfs", "/tmp", "--bind", str(work), str(work), "--chdir", str(work),
             "--proc", "/proc", "--dev", "/dev", "--unshare-net", "--unshare-pid",
             "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session",
             "--setenv", "HOME", str(work), "--setenv", "TMPDIR", "/tmp"]
    return opts


def python_roots() -> list[str]:
    """The virtual environment and the Python it was made from, unless under /usr."""
    roots: list[str] = []
    for prefix in (sys.prefix, sys.base_prefix):
        for path in {prefix, os.path.realpath(prefix)}:
            if path not in roots and not path.startswith("/usr") and os.path.isdir(path):
                roots.append(path)
    return roots


_prctl: Callable[..., int] | None = None


def prepare() -> None:
    """Import and look up now what starting processes needs (before a fork, or while waiting
    for work), so none of it happens between fork and exec. Stopping a tree needs psutil: it
    is imported then, not at every start (the import alone takes tens of milliseconds)."""
    global _prctl
    import subprocess  # noqa: F401

    _setpriv()
    if _prctl is None:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def start(cmd: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a replica's process in its own session; its stdout and stderr are pipes."""
    import subprocess

    prepare()
    preexec = None if cmd[0] == _setpriv() else _die_with_parent
    return subprocess.Popen(
        list(cmd), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec,
    )


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the supervisor dies."""
    assert _prctl is not None
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process below it (that still exists)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_tree(proc: subprocess.Popen[bytes], grace: float = GRACE_S) -> None:
    """SIGTERM the process group and tree of ``proc``; SIGKILL what is left after ``grace``."""
    import psutil

    members = tree(proc.pid) if proc.poll() is None else []
    _signal_all(proc.pid, members, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=grace)
    if alive or proc.poll() is None:
        _signal_all(proc.pid, alive, signal.SIGKILL)
    proc.wait()
    sweep_group(proc.pid)


def sweep_group(pgid: int) -> None:
    """SIGKILL whatever is left in a finished replica's process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_all(pgid: int, members: list[psutil.Process], sig: signal.Signals) -> None:
    import psutil

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for member in members:
        with contextlib.suppress(psutil.Error):
            member.send_signal(sig)
