"""Owner records (host, pid, process start time) of processes: the one way runyard names one.

A run's lease (``runyard.core.lease``) records its owner so that a reader can tell, on the same
host, whether the owner still lives (``runyard.core.liveness``). The start time is computed the
way psutil computes it on Linux (boot time plus the process's start in clock ticks), read from
``/proc`` without importing psutil: that import alone costs tens of milliseconds at every start
of a command line or supervisor. Where ``/proc`` cannot answer, psutil does.
"""

from __future__ import annotations

import os

from runyard.model import Owner

_boot: list[float] = []
_host: list[str] = []
_mine: dict[int, Owner] = {}  # by pid: a forked child is an owner of its own


def host_name() -> str:
    if not _host:
        _host.append(os.uname().nodename)
    return _host[0]


def this_owner() -> Owner:
    """The owner record of the calling process (computed once per process)."""
    pid = os.getpid()
    owner = _mine.get(pid)
    if owner is None:
        owner = _mine[pid] = owner_of(pid)
    return owner


def owner_of(pid: int) -> Owner:
    """The owner record of process ``pid`` on this host (start time 0 if it is gone)."""
    started = start_time(pid)
    return Owner(host=host_name(), pid=pid, started=0.0 if started is None else started)


def start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or ``None`` if it is gone."""
    found = _proc_start_time(pid)
    if found is not None:
        return found
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _proc_start_time(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        ticks = int(fields[19])  # field 22 of the line, counted after the command name
        return ticks / os.sysconf("SC_CLK_TCK") + _boot_time()
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> float:
    if not _boot:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(b"btime"):
                    _boot.append(float(line.split()[1]))
                    break
            else:
                raise ValueError("no btime in /proc/stat")
    return _boot[0]
