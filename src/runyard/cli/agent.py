"""The agent: a warm process that runs ``run exec``, ``run create`` and ``record`` for
``runyard.cli.entry``.

The first of those commands that finds no agent starts one in the background. It imports the
command line and what a command run needs, then waits on a UNIX socket in a folder only its
user may enter (a folder it does not own, or that others may enter, it does not serve in), and
serves only a caller that is its equal: the same user, groups, capabilities, root folder,
namespaces and control groups (see ``runyard.cli.peer``); it declines any other, which then
runs the command itself. For each command it forks a copy of itself: the
copy takes the caller's standard streams (passed over the socket), working folder,
environment and umask (and limits, niceness, CPU affinity), says ``ready``, and once the
caller says ``go`` (a caller that gave up waiting closes instead, and runs the command
itself: never both) runs the ordinary command line and sends back its exit code. The
agent itself never runs a command, so each copy starts clean: modules imported, nothing
opened, nothing cached.

It exits after ``IDLE_S`` seconds without a command, when its socket file is removed or
replaced, and when the installed runyard changes: it answers ``stale`` to that command (which
then runs in the caller's own process) and leaves, and the next command starts a new agent.
Each command it hands on is logged as a line on its standard error.
Run: ``python -m runyard.cli.agent SOCKET``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import marshal
import os
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runyard.cli import peer

IDLE_S = 900.0
ANSWER_S = 5.0  # how long the agent waits for a caller's request
LOCK_WAIT_S = 5.0
PRELOAD = (
    "runyard.cli.main", "runyard.cli.run_all", "runyard.cli.command_runs",
    "runyard.cli.codespecs", "runyard.commands.execute", "runyard.commands.launch",
    "runyard.commands.runspec", "runyard.commands.supervisor", "runyard.commands.detach",
    "runyard.processes.owners", "runyard.commands.pipes", "runyard.commands.buffers",
    "runyard.stores.sqlite", "runyard.stores.filesystem", "runyard.stores.chunked",
    "subprocess", "shutil", "ctypes", "select",
    "runyard.cli.record", "runyard.cli.versions", "runyard.recording.record",
)
PACKAGE = Path(__file__).resolve().parent.parent
_KEEP_OUT: list[int] = []  # the agent's own descriptors, closed in each copy


def serve(path: str) -> None:
    """Serve commands on the socket at ``path`` until idle, replaced or out of date."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if not private_folder(os.lstat(folder)):
        return  # someone else's folder, or one others may enter: not safe to serve in
    with open(path + ".lock", "a") as lock:
        if not _locked(lock.fileno()):
            return  # another agent serves here
        _KEEP_OUT.append(lock.fileno())
        for module in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
        stamp = code_stamp()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(16)
        listener.settimeout(1.0)
        _KEEP_OUT.append(listener.fileno())
        inode = os.stat(path).st_ino
        own = peer.own_view()
        import gc

        gc.freeze()  # the copies never collect the modules' objects
        _loop(listener, path, (inode, stamp, own))


def private_folder(info: os.stat_result) -> bool:
    """A folder (not a link to one) of this user that no one else may enter."""
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & 0o077)


def _locked(fd: int) -> bool:
    deadline = time.monotonic() + LOCK_WAIT_S  # an agent on its way out may still hold it
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def code_stamp() -> tuple[int, int]:
    """How many modules the installed package has and the newest one's change time."""
    count, newest = 0, 0
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                count += 1
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return count, newest


def _loop(listener: socket.socket, path: str,
          this: tuple[int, tuple[int, int], peer.View]) -> None:
    """Serve until idle; ``this`` is the agent's socket inode, code stamp and own view."""
    inode, stamp, own = this
    last = time.monotonic()
    while time.monotonic() - last < IDLE_S:
        _reap()
        try:
            if os.stat(path).st_ino != inode:
                return  # replaced by another agent's socket
        except FileNotFoundError:
            return
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        last = time.monotonic()
        with conn:
            why = peer.caller_differs(conn, own)
            if why is not None:
                _log(f"declined a caller: {why}; it runs its command itself")
                with contextlib.suppress(OSError):
                    conn.send(b"declined")
                continue
            if code_stamp() != stamp:
                with contextlib.suppress(OSError):
                    conn.send(b"stale")
                return
            _fork_copy(conn)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _fork_copy(conn: socket.socket) -> None:
    try:
        conn.settimeout(ANSWER_S)  # a caller that says nothing does not hold up the others
        request = marshal.loads(conn.recv(1 << 20))
    except (OSError, ValueError, EOFError, TypeError):
        return
    _log(f"runs {' '.join(request['argv'])}")
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        code = 1
        try:
            for fd in _KEEP_OUT:
                os.close(fd)
            code = _run_copy(conn, request)
        finally:
            os._exit(code)
    _log(f"copy {pid} started")


def _log(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(f"runyard agent: {line}", file=sys.stderr, flush=True)


def _run_copy(conn: socket.socket, request: dict[str, Any]) -> int:
    """In the forked copy: become the caller's command, run it, report the exit code.

    The caller's streams come with its ``go``, after ``ready``: a caller that gives up
    waiting has none in flight to a stuck agent (they would stay open there)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)
    os.setsid()  # out of the agent's session: the agent's end does not touch it
    try:
        _take_settings(request)
    except (OSError, ValueError, KeyError) as exc:  # a limit it may not raise, say: the caller
        _log(f"refused: {exc}")  # runs the command itself (nothing has run here)
        conn.send(b"refused")
        return 1
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["runyard", *request["argv"]]
    conn.send(b"ready")
    conn.settimeout(None)
    order, fds, _, _ = socket.recv_fds(conn, 16, 3)
    if order != b"go":  # the caller gave up waiting: it runs the command itself
        return 1
    _take_streams(request["fds"], fds)
    threading.Thread(target=_obey, args=(conn,), daemon=True).start()
    code = _command_line(request["argv"])
    conn.send(b"exit %d" % code)
    return code


def _take_settings(request: dict[str, Any]) -> None:
    """The caller's folder and what a job inherits from it: umask, resource limits,
    niceness and CPU affinity."""
    import resource

    os.chdir(request["cwd"])
    os.umask(request["umask"])
    for name, limits in request["limits"].items():
        which = getattr(resource, name, None)
        if which is not None and resource.getrlimit(which) != tuple(limits):
            resource.setrlimit(which, tuple(limits))
    nice = request["nice"] - os.nice(0)
    if nice:
        os.nice(nice)  # lowering it needs a privilege: an OSError then
    os.sched_setaffinity(0, request["cpus"])


def _take_streams(numbers: list[int], fds: list[int]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    given = dict(zip(numbers, fds, strict=True))
    for target in (0, 1, 2):
        os.dup2(given.get(target, null), target)
    for fd in {null, *fds}:
        if fd > 2:
            os.close(fd)


def _command_line(argv: list[str]) -> int:
    import atexit

    from runyard.cli.main import main

    try:
        code = main(argv)
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        # What the command registered to run at exit (closing stores, ending open runs) runs
        # now, before its exit code is reported: the copy then leaves with ``os._exit``, so
        # nothing can keep it alive after its caller has gone. ``atexit`` has no public call
        # for "run them now"; this private one is a matter of order, not of speed.
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    return code


def _obey(conn: socket.socket) -> None:
    """Take the caller's signals; if the caller is gone, go too (as its own process would)."""
    while True:
        try:
            order = conn.recv(64)
        except OSError:
            order = b""
        if order.startswith(b"signal "):
            os.kill(os.getpid(), int(order[7:]))
        elif not order:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m runyard.cli.agent SOCKET")
    serve(sys.argv[1])
