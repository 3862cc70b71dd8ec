"""Who is calling the agent, and whether it is the agent's equal.

The agent runs a caller's command as itself: with its own user, groups, capabilities, root
folder, namespaces and control groups. So it serves a caller only if the caller has exactly
these too; otherwise a caller in a sandbox (another mount, network, pid or user namespace,
another root, fewer groups or capabilities, a seccomp filter more, another cgroup) would have
its command run outside its limits. It declines such a caller, which then runs the command itself.

The caller is known by its socket: ``SO_PEERCRED`` gives its pid, uid and gid, and what the
kernel shows of that pid under ``/proc`` gives the rest. A pid can be reused once its process
has exited, so the caller's pidfd (``SO_PEERPIDFD``, Linux 6.5; else ``pidfd_open`` right after
``accept``) is checked to be still running *after* ``/proc`` was read: the pid was the
caller's throughout. Anything that cannot be read declines the caller.

The command line's ``entry`` keys the agent's socket on the same fields (``STATUS_FIELDS``), so a
caller that differs finds an agent of its own rather than one that declines it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not ``typing``'s: the command line imports this before a hand-over
if TYPE_CHECKING:
    import socket

# The lines of /proc/PID/status that say who a process is and what it may do.
STATUS_FIELDS = (b"Uid", b"Gid", b"Groups", b"CapInh", b"CapPrm", b"CapEff", b"CapBnd",
                 b"CapAmb", b"NoNewPrivs", b"Seccomp", b"Seccomp_filters")
SO_PEERPIDFD = 77  # Linux 6.5 and later; not named by Python 3.11's socket module
View = dict[str, object]


def view(pid: str, namespaces: list[str]) -> View:
    """What the process ``pid`` (or ``"self"``) is, field by field, as the agent compares it."""
    proc = f"/proc/{pid}"
    seen: View = {}
    for name in namespaces:
        info = os.stat(f"{proc}/ns/{name}")
        seen[f"{name} namespace"] = (info.st_dev, info.st_ino)
    root = os.stat(f"{proc}/root")  # the path too: a bind mount of / is the same inode
    seen["root folder"] = (root.st_dev, root.st_ino, os.readlink(f"{proc}/root"))
    with open(f"{proc}/status", "rb") as status:
        for line in status:
            key, _, value = line.partition(b":")
            if key in STATUS_FIELDS:
                seen[key.decode()] = value.split()
    seen["cgroup"] = _read(f"{proc}/cgroup")
    seen["security label"] = _read(f"{proc}/attr/current")
    return seen


def own_view() -> View:
    """The agent's own view, taken once: the one every caller must match."""
    return view("self", sorted(os.listdir("/proc/self/ns")))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as source:
            return source.read()
    except OSError:  # not there (no security module), or not readable: the same for both
        return None


def caller_differs(conn: socket.socket, own: View) -> str | None:
    """Why the process on the other end of ``conn`` may not be served, or ``None``."""
    import socket
    import struct

    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    if (uid, gid) != (os.geteuid(), os.getegid()):
        return f"its user or group differs (uid {uid}, gid {gid})"
    pidfd = None
    try:
        pidfd = _pidfd(conn, pid)
        seen = view(str(pid), [key.split()[0] for key in own if key.endswith(" namespace")])
        if pidfd is not None and _exited(pidfd):
            return "it exited before it could be checked"
    except OSError as exc:
        return f"its process cannot be inspected ({exc.strerror or exc})"
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return next((f"its {key} differs" for key, value in own.items() if seen.get(key) != value),
                None)


def _pidfd(conn: socket.socket, pid: int) -> int | None:
    """The caller's pidfd: from its socket where the kernel keeps it, else by its pid."""
    import socket

    try:
        return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        pass
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise  # gone already: declined
    except OSError:  # no pidfds (Linux before 5.3): the reads alone decide
        return None


def _exited(pidfd: int) -> bool:
    import select

    return bool(select.select([pidfd], [], [], 0)[0])
