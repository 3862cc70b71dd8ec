"""The ``runyard`` program: the command line, with a warm start for command runs.

Starting Python and importing click and the store take most of a ``runyard run exec`` of a
short job. So ``run exec`` and ``run create`` are handed to the *agent* of this user and
installation when one is up (see ``runyard.cli.agent``): a process that has imported the
command line already and forks a copy of itself per command. The copy takes this process's
standard streams, working folder, environment and umask, runs the same command line code, and
reports its exit status back; signals this process gets (Ctrl-C, ``SIGTERM``, ``SIGHUP``) are
passed on to it, and if this process dies the copy dies with it.

When no agent answers, the command runs here as usual, and an agent is started in the
background for the next one. ``RUNYARD_AGENT=0`` turns the agent off; ``RUNYARD_AGENT_SOCKET``
names its socket (default: one per user, interpreter, installation, and what the agent checks
a caller by (see ``runyard.cli.peer``), in a folder of this user's under ``$TMPDIR``).

This process sends its environment and streams only to an agent of its own user: the socket's
folder must be this user's own (not a link) and closed to others, the socket this user's, and
the process listening on it (``SO_PEERCRED``) of this user; otherwise the command runs here
(and no agent is started: another user's folder, say, is left alone).
This module imports only what a hand-over needs: it must stay light.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AGENT_COMMANDS = (("run", "exec"), ("run", "create"), ("record",))
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
MAX_PATH = 108  # bytes in a UNIX socket's address, with the final NUL
READY_S = 10.0  # how long to wait for the agent's copy to be ready before running here


def main() -> None:
    argv = sys.argv[1:]
    if _for_agent(argv) and os.environ.get("RUNYARD_AGENT", "1") != "0":
        code = _hand_over(argv)
        if code is not None:
            sys.exit(code)
    from runyard.cli.main import main as run_here

    sys.exit(run_here(argv))


def _for_agent(argv: list[str]) -> bool:
    """Whether ``argv`` is ``[--store URL] run exec|create …`` or ``record …`` (the
    latency-bound commands)."""
    words = list(argv[:4])
    if words[:1] == ["--store"]:
        words = words[2:]
    elif words[:1] and words[0].startswith("--store="):
        words = words[1:]
    return tuple(words[:2]) in AGENT_COMMANDS or tuple(words[:1]) in AGENT_COMMANDS


def socket_path() -> str:
    """The agent's socket for this user, interpreter and installation of runyard (or
    ``RUNYARD_AGENT_SOCKET``)."""
    chosen = os.environ.get("RUNYARD_AGENT_SOCKET")
    if chosen:
        return chosen
    import zlib

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    key = zlib.crc32(b"\0".join([sys.executable.encode(), here.encode(), *_identity()]))
    base = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(base, f"runyard-{os.geteuid()}", f"agent-{key:08x}.sock")


def _identity() -> list[bytes]:
    """What an agent checks a caller by (``runyard.cli.peer``): control groups (a batch
    system's job limits and accounting then hold for what it runs), namespaces, root, and
    the user, groups and capabilities; a caller that differs gets an agent of its own."""
    from runyard.cli.peer import STATUS_FIELDS

    root = os.stat("/")
    found = [_read("/proc/self/cgroup"), b"%d:%d" % (root.st_dev, root.st_ino)]
    try:  # noqa: SIM105 - contextlib is not imported here
        found += [os.readlink(f"/proc/self/ns/{n}").encode()
                  for n in sorted(os.listdir("/proc/self/ns"))]
    except OSError:
        pass
    status = _read("/proc/self/status").splitlines()
    return found + [line for line in status if line.partition(b":")[0] in STATUS_FIELDS]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as source:
            return source.read()
    except OSError:
        return b""


def _hand_over(argv: list[str]) -> int | None:
    """Run ``argv`` in the agent; its exit code, or ``None`` when no agent took it.

    It talks through ``_socket``, the C half of ``socket``: the Python half imports ``enum``
    and ``selectors``, a sixth of what a hand-over costs."""
    import _socket
    from array import array

    path = socket_path()
    if len(path.encode()) >= MAX_PATH:
        return None  # too long for a UNIX socket's address: no agent
    mine = _own_socket(path)
    if not mine:
        if mine is None:  # none yet, in a folder of this user's or none
            _start_agent(path)
        return None
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        conn.settimeout(1.0)
        conn.connect(path)
        listener = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:  # no agent here
        conn.close()
        _start_agent(path)
        return None
    if int.from_bytes(listener[4:8], sys.byteorder) != os.geteuid():
        conn.close()  # another user listens there: it gets nothing
        return None
    try:
        conn.settimeout(READY_S)
        fds = [fd for fd in (0, 1, 2) if _is_open(fd)]
        conn.send(_request(argv, fds))
        if conn.recv(64) == b"ready":  # the streams go with ``go``: none stay in flight
            conn.settimeout(None)  # to an agent that never answers
            rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, array("i", fds))]
            conn.sendmsg([b"go"], rights)  # from here on the copy runs it, and only it
            return _follow(conn)
    except OSError:  # it went away, or took too long: it will not run the command
        pass
    conn.close()  # ``stale`` (older than the installed code), ``refused`` (it cannot take
    return None  # this process's limits), ``declined`` (it is not this process's equal),
    # or no answer: the command runs here


def _own_socket(path: str) -> bool | None:
    """Whether ``path`` is a socket of this user in a folder of this user's that no one else
    may enter; ``None`` when there is no socket yet (and the folder is such, or missing)."""
    import stat  # imported by ``os`` already

    uid = os.geteuid()
    try:
        folder = os.lstat(os.path.dirname(path) or ".")
    except FileNotFoundError:
        return None
    except OSError:
        return False
    if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != uid or folder.st_mode & 0o077:
        return False
    try:
        sock = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    return stat.S_ISSOCK(sock.st_mode) and sock.st_uid == uid


def _request(argv: list[str], fds: list[int]) -> bytes:
    """What the copy takes over: the command, folder, environment, and the process settings
    a job inherits (umask, resource limits, niceness, CPU affinity)."""
    import marshal
    import resource

    umask = os.umask(0o22)
    os.umask(umask)
    limits = {name: resource.getrlimit(getattr(resource, name))
              for name in dir(resource) if name.startswith("RLIMIT_")}
    return marshal.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                          "umask": umask, "fds": fds, "limits": limits, "nice": os.nice(0),
                          "cpus": sorted(os.sched_getaffinity(0))})


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _follow(conn: Any) -> int:
    """Pass signals on to the agent's copy until it reports its exit code."""
    import _signal  # the C half of ``signal`` (which imports ``enum``)

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is not imported here
            conn.send(b"signal %d" % signum)
        except OSError:
            pass

    for name in SIGNALS:
        _signal.signal(getattr(_signal, name), forward)
    while True:
        answer = conn.recv(64)
        if answer.startswith(b"exit "):
            return int(answer[5:])
        if not answer:  # the copy died without a word
            os.write(2, b"error: the runyard agent ended the command without an exit status\n")
            return 1


def _start_agent(path: str) -> None:
    """Start an agent in the background (it serves the next command, not this one)."""
    import subprocess

    try:  # noqa: SIM105 - contextlib is not imported here
        subprocess.Popen(
            [sys.executable, "-m", "runyard.cli.agent", path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, cwd="/",
        )
    except OSError:
        pass  # no agent then: every command runs in its own process


if __name__ == "__main__":
    main()
