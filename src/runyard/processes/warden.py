"""The warden: the process between a supervisor and its job, so the job's whole tree ends with it.

A parent-death signal reaches only a direct child, and a grandchild that calls ``setsid`` or
double-forks leaves both its process group and its parent behind. The warden closes those doors:
it is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every orphan of the job is re-parented
to it and stays its descendant, and it watches its owner through a pidfd (any death, ``kill -9``
included, makes it readable). When the owner dies, or when the job's first process exits, it
SIGKILLs every descendant, found through ``/proc``, round after round until none is left, and
then exits as the job did (the same exit code, or the same signal), so the supervisor sees the
job's own status. It ignores SIGTERM, SIGINT and SIGHUP: a stop reaches the job through its
process group and its tree (``kill_tree``), and the warden sweeps up after it.

Run by path as ``python -I -S warden.py OWNER [CGROUP_PROCS...]``: it imports only the standard
library, nothing of runyard, and starts in about 10 ms (``contextlib`` is left out: 3 ms more).
It joins the control groups it is given at once, then reads its job
from standard input (``orders``: command, environment, folder, and the ``cgroup.procs`` files of
the resource meter, which it joins before it forks the job, so everything the job starts is
counted there). So it can be started before the job is known, while the command line is still
recording the run (``executors.prestart``), and a job starts without waiting for an interpreter.
"""

from __future__ import annotations

import os
import select
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_PARENT_MS = 500  # where pidfds are missing (Linux < 5.3): how often the parent is checked
_libc: list[object] = []
ROUNDS = 1000


def descendants(root: int) -> list[int]:
    """Every live process below ``root``, from one scan of ``/proc`` (parents first)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = _parent(int(name))
            if parent is not None:
                children.setdefault(parent, []).append(int(name))
    found, queue = [], [root]
    while queue:
        kids = children.get(queue.pop(), [])
        found += kids
        queue += kids
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rpartition(b")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def kill_descendants(root: int | None = None) -> None:
    """SIGKILL every descendant of ``root`` (this process) until none is left; reaps them
    when ``root`` is this process. Killing stops forks: each round finds fewer."""
    me = os.getpid()
    root = me if root is None else root
    for _ in range(ROUNDS):
        found = descendants(root)
        if not found:
            return
        for pid in found:
            try:  # noqa: SIM105 (no contextlib: see the module docstring)
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if root == me:
            _reap_all()


def _reap_all() -> bool:
    """Reap every child that has ended; whether any child is left (running)."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return False
    return True


def prctl(option: int, value: int) -> None:
    if not _libc:
        import ctypes  # only here: a few milliseconds

        _libc.append(ctypes.CDLL(None, use_errno=True))
    _libc[0].prctl(option, value, 0, 0, 0)  # type: ignore[attr-defined]


def become_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def watch_owner(owner: int) -> int:
    """A pidfd of ``owner``, which must be this process's parent (else it died already);
    -1 where the kernel has no pidfds (then ``owner_gone`` is asked now and then)."""
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        raise
    except (OSError, AttributeError):
        fd = -1
    if owner_gone(owner):
        if fd >= 0:
            os.close(fd)
        raise ProcessLookupError(owner)
    return fd


def owner_gone(owner: int) -> bool:
    return os.getppid() != owner


def join_cgroups(procs_files: list[str]) -> None:
    for path in procs_files:
        try:
            with open(path, "w") as procs:
                procs.write("0")  # "0" is the writing process itself
        except OSError:
            pass  # the meter then counts less, nothing else changes


def start_job(command: list[str], env: dict[bytes, bytes]) -> int:
    warden = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the job's first process, at least,
            if os.getppid() != warden:  # ends even if the warden is killed
                os._exit(137)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            os.execvpe(command[0], command, env)
        except OSError as exc:
            os.write(2, f"runyard: cannot execute {command[0]}: {exc.strerror}\n".encode())
        finally:
            os._exit(127)
    return pid


def wait_job(job: int, owner: int, owner_fd: int, wake: int) -> int | None:
    """The job's wait status, or ``None`` if the owner died first."""
    poller = select.poll()
    if owner_fd >= 0:
        poller.register(owner_fd, select.POLLIN)
    poller.register(wake, select.POLLIN)
    while True:
        status = _reap_until(job)
        if status is not None:
            return status
        ready = poller.poll(None if owner_fd >= 0 else POLL_PARENT_MS)
        if owner_fd < 0 and owner_gone(owner):
            return None
        for fd, _ in ready:
            if fd == owner_fd:
                return None
            try:  # noqa: SIM105
                os.read(wake, 512)
            except BlockingIOError:
                pass


def _reap_until(job: int) -> int | None:
    """Reap what has ended; the job's wait status once it is among them."""
    try:
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return None
            if pid == job:
                return status
    except ChildProcessError:
        return None


def exit_like(status: int | None) -> None:
    """Exit with the job's code, or die of the job's signal (no core file of our own)."""
    if status is not None and os.WIFSIGNALED(status):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(137 if status is None else os.waitstatus_to_exitcode(status) & 0xFF)


def read_orders() -> tuple[list[str], dict[bytes, bytes], list[str]] | None:
    """The job, from standard input (to its end): ``None`` if there is none (the owner ended,
    or wants no job after all). Standard input is then /dev/null, for the job."""
    chunks = []
    while chunk := os.read(0, 1 << 16):
        chunks.append(chunk)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if not chunks:
        return None
    fields = [os.fsdecode(field) for field in b"".join(chunks).split(b"\0")]
    cwd, count = fields[0], int(fields[1])
    cgroups, rest = fields[2:2 + count], fields[2 + count:]
    count = int(rest[0])
    env = dict(os.fsencode(item).split(b"=", 1) for item in rest[1:1 + count])
    os.chdir(cwd)
    return cgroups, env, rest[1 + count:]


def orders(command: list[str], env: dict[str, str], cwd: str, cgroups: list[str]) -> bytes:
    """What ``read_orders`` reads (NUL cannot occur in a path, a variable or an argument)."""
    items = [f"{key}={value}" for key, value in env.items()]
    fields = [cwd, str(len(cgroups)), *cgroups, str(len(items)), *items, *command]
    return b"\0".join(os.fsencode(field) for field in fields)


def main(argv: list[str]) -> None:
    owner, joined = int(argv[0]), argv[1:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    become_subreaper()
    try:
        owner_fd = watch_owner(owner)
    except ProcessLookupError:
        os._exit(137)
    join_cgroups(joined)  # before the job is known: a supervisor's first warden
    job = read_orders()
    if job is None:
        os._exit(0)
    cgroups, env, command = job
    join_cgroups([path for path in cgroups if path not in joined])
    status = wait_job(start_job(command, env), owner, owner_fd, wake_read)
    if status is None or _reap_all():  # no child left: as a subreaper, no descendant either
        kill_descendants()
    exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
