"""Where a job's command executes: ``local`` (a host process) or ``sandbox`` (bubblewrap).

Every job starts under a warden (``warden.py``) in a new session and process group of its own
(a supervisor starts one ahead of time, ``prestart``):
the warden is its subreaper and watches its owner, so the job's whole tree, grandchildren that
called ``setsid`` or double-forked included, ends with the owner, however the owner ends. In
the sandbox the pid namespace adds its own guarantee (``sandbox.py``). Stopping a tree is
``tree.kill_tree``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.errors import ConfigError, ValidationError

if TYPE_CHECKING:  # subprocess is imported where used: ``run exec`` itself needs none
    import subprocess

EXECUTORS = ("local", "sandbox")
CONTAINER_ENGINES = ("docker", "podman")
SANDBOX_NOTE = "in a bubblewrap sandbox on this host"
WARDEN = str(Path(__file__).with_name("warden.py"))


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
    if value == "sandbox" and which("bwrap") is None:
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
    return which(program, env.get("PATH", os.defpath))


def which(program: str, path: str | None = None) -> str | None:
    import shutil  # imported where used: ``run exec`` itself needs no process lookups

    return shutil.which(program, path=path)


def argv(executor: str, command: Sequence[str], work: Path, *, read_only: Sequence[str] = (),
         network: bool = False, inside: str | None = None) -> list[str]:
    """The job's command line: the sandbox's options first, if it runs in the sandbox
    (``read_only`` folders visible in it, the host's ``network`` kept, the work folder seen
    at ``inside``: ``sandbox_prefix``)."""
    if executor != "sandbox":
        return list(command)
    from runyard.processes.sandbox import sandbox_prefix

    prefix = sandbox_prefix(work, read_only=read_only, network=network, inside=inside)
    return [*prefix, *command]


def prepare() -> None:
    """Import now what starting processes needs (before a fork, or while waiting for work)."""
    import subprocess  # noqa: F401

    from runyard.processes import sandbox  # noqa: F401


_ready: list[tuple[int, subprocess.Popen[bytes]]] = []  # (owner pid, a warden waiting)


def prestart(cgroups: Sequence[str] = ()) -> None:
    """Start a warden now, waiting for its job, in ``cgroups`` (``cgroup.procs`` files) at
    once: the next ``start`` in this process gives it the job instead of waiting for a new
    interpreter (a supervisor does this while the command line records its run)."""
    if not _ready:
        _ready.append((os.getpid(), _warden(cgroups)))


def start(cmd: Sequence[str], env: Mapping[str, str], cwd: Path,
          cgroups: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (``argv``'s) under a warden, in a session of its own; the warden's process
    stands for the job (its exit status is the job's); stdout and stderr are pipes.

    ``cgroups``: ``cgroup.procs`` files the job joins before it starts (the meter's)."""
    from runyard.processes.warden import orders

    proc = _waiting() or _warden()
    assert proc.stdin is not None
    try:
        proc.stdin.write(orders(list(cmd), dict(env), str(cwd), list(cgroups)))
        proc.stdin.close()
    except OSError:  # the warden died before it had its job
        proc.kill()
        proc.wait()
        raise
    return proc


def _waiting() -> subprocess.Popen[bytes] | None:
    while _ready:
        owner, proc = _ready.pop()
        if owner == os.getpid() and proc.poll() is None:
            return proc
    return None


def _warden(cgroups: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-I", "-S", WARDEN, str(os.getpid()), *cgroups], cwd="/",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
