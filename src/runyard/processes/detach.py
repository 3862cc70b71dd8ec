"""Starting a process detached from its caller: the one way runyard does it.

``spawn_detached`` starts a command line in a session of its own, with no terminal and its output
in a log file, so it outlives the process that started it (the workflow supervisor, a command
run's supervisor in a fresh interpreter, a local Ray head). ``detach_here`` is the same for a
forked child (the double fork of a command run's early supervisor): new session, a grandchild
re-parented away from the caller, every descriptor of the caller's closed.

This module is imported before a fork: it must stay light.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from runyard.errors import RuntimeUnavailable

PR_SET_CHILD_SUBREAPER = 36


def spawn_detached(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> int:
    """Start ``argv`` detached from this process (own session, no stdin); return its pid."""
    import subprocess

    private_parent(log_path)
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd=cwd,
                env=dict(os.environ if env is None else env),
            )
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    _reap_later(proc)
    return proc.pid


def _reap_later(proc: object) -> None:
    """Wait for the child in a daemon thread, so it never lingers as a zombie of ours."""
    import threading

    threading.Thread(target=proc.wait, name=f"runyard-reap-{proc.pid}",  # type: ignore[attr-defined]
                     daemon=True).start()


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args…`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def detach_here(keep: Sequence[int]) -> bool:
    """In a forked child: new session, then fork again; True in the grandchild (which goes on,
    every descriptor but ``keep`` and the standard streams closed), the middle child exits."""
    os.setsid()
    if os.fork():
        os._exit(0)
    close_all_but(*keep)
    return True


def close_all_but(*keep: int) -> None:
    """Close every descriptor above the standard streams except ``keep``."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def redirect(log_path: Path) -> None:
    """Standard input from /dev/null, standard output and error appended to ``log_path``."""
    if str(log_path) != os.devnull:
        private_parent(log_path)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def private_parent(path: Path) -> None:
    """Make the folder of ``path`` (a log beside a job's work) one only its owner enters."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def subreaper() -> None:
    """Become the reaper of this process's orphaned descendants (best effort)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
