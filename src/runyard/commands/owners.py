"""Owner records (host, pid, process start time) of processes, read from ``/proc``.

They are the records ``runyard.core.liveness`` gives and checks, computed the way psutil
computes a start time on Linux (boot time plus the process's start in clock ticks), without
importing psutil: that import alone costs tens of milliseconds at every start of a command line
or supervisor. Where ``/proc`` cannot answer, ``liveness`` (psutil) does.
"""

from __future__ import annotations

import os

from runyard.model import Owner

_boot: list[float] = []


def this_owner() -> Owner:
    """The owner record of the calling process."""
    return owner_of(os.getpid())


def owner_of(pid: int) -> Owner:
    """The owner record of process ``pid`` on this host."""
    started = _start_time(pid)
    if started is None:
        import psutil

        try:
            started = float(psutil.Process(pid).create_time())
        except psutil.Error:
            started = 0.0  # gone: as ``liveness`` records it
    return Owner(host=os.uname().nodename, pid=pid, started=started)


def _start_time(pid: int) -> float | None:
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
