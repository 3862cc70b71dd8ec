"""The one resource meter: the CPU time, memory and processes of a process tree.

``JobMeter`` measures the jobs a supervisor starts, as a whole, from the kernel's own accounts:
a control group of its own (cgroup v2 where the machine has it, else v1's ``cpuacct`` and
``memory``; every job's warden joins it before the job starts, so nothing the job forks is
missed), else ``getrusage(RUSAGE_CHILDREN)`` once the jobs have been waited for (exact CPU; the
peak is the largest single process). Its summary: ``cpu_user_s``, ``cpu_system_s``,
``peak_rss_bytes`` and ``meter`` (which of the three measured).

``TreeMeter`` samples a live tree with psutil (the ``Process`` objects are kept between samples:
a new one would measure from zero), for a run that reports while it runs (``tracking``).
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path
from typing import Any

CGROUP = Path("/sys/fs/cgroup")
PREFIX = "runyard-"  # then the pid of the supervisor that made the group
_mine: dict[int, JobMeter] = {}  # by pid: a forked child has a meter of its own
NS = 1e-9


class JobMeter:
    """The jobs of this process (a supervisor: one run); ``procs_files`` go to each job's
    warden (``executors.start``). One per process: ``of_this_process``."""

    def __init__(self) -> None:
        self.folders: list[Path] = []
        self.kind = "rusage"
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.folders, self.kind = _make_groups(f"{PREFIX}{os.getpid()}")
        for folder in self.folders:
            sweep_left(folder.parent)

    @classmethod
    def of_this_process(cls) -> JobMeter:
        """This process's meter, made at the first call (a supervisor makes it, and its first
        warden joins it, while the command line records the run: joining a v1 memory group
        takes milliseconds)."""
        meter = _mine.get(os.getpid())
        if meter is None:
            meter = _mine[os.getpid()] = cls()
        return meter

    @property
    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def summary(self) -> dict[str, Any]:
        """What the jobs used, once they have ended (and been waited for)."""
        usage = rusage_summary()
        with contextlib.suppress(OSError, ValueError):
            if self.kind == "cgroup-v2":
                usage.update(_v2_usage(self.folders[0]))
            elif self.kind == "cgroup-v1":
                usage.update(_v1_usage(self.folders))
        return {**usage, "meter": self.kind}

    def close(self) -> None:
        """Remove the control groups (empty once the jobs have ended)."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.folders = []
        _mine.pop(os.getpid(), None)


def sweep_left(parent: Path) -> None:
    """Remove the empty groups of supervisors that died (``kill -9``) before removing them."""
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):  # not empty, or gone meanwhile: left alone
                folder.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rusage_summary() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_user_s": round(usage.ru_utime, 3), "cpu_system_s": round(usage.ru_stime, 3),
            "peak_rss_bytes": usage.ru_maxrss * 1024}


def _own_groups() -> dict[str, str]:
    """This process's control group per hierarchy ("" for v2's), from /proc/self/cgroup."""
    groups: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            groups[controller] = path
    return groups


def _make_groups(name: str) -> tuple[list[Path], str]:
    """Child control groups for the jobs: v2 if this machine runs v2, else v1; else none."""
    mine = _own_groups()
    if (CGROUP / "cgroup.controllers").exists():
        return [_child(CGROUP / mine[""].lstrip("/"), name)], "cgroup-v2"
    folders = [_child(CGROUP / c / mine[c].lstrip("/"), name) for c in ("cpuacct", "memory")]
    return folders, "cgroup-v1"


def _child(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir()  # as a user who may not: OSError, and the meter falls back to rusage
    return folder


def _v2_usage(folder: Path) -> dict[str, Any]:
    stat = dict(line.split() for line in (folder / "cpu.stat").read_text().splitlines())
    usage = {"cpu_user_s": round(int(stat["user_usec"]) / 1e6, 3),
             "cpu_system_s": round(int(stat["system_usec"]) / 1e6, 3)}
    peak = folder / "memory.peak"
    if peak.exists():  # only where the memory controller is enabled for it
        usage["peak_rss_bytes"] = int(peak.read_text())
    return usage


def _v1_usage(folders: list[Path]) -> dict[str, Any]:
    cpu, memory = folders
    return {"cpu_user_s": round(int((cpu / "cpuacct.usage_user").read_text()) * NS, 3),
            "cpu_system_s": round(int((cpu / "cpuacct.usage_sys").read_text()) * NS, 3),
            "peak_rss_bytes": int((memory / "memory.max_usage_in_bytes").read_text())}


IO_FIELDS = {"rchar": "read_bytes", "wchar": "write_bytes",
             "read_bytes": "disk_read_bytes", "write_bytes": "disk_write_bytes"}


def exited_io(pid: int) -> dict[str, int]:
    """What a child that has exited, and is not reaped yet, read and wrote, with every
    descendant it reaped (the kernel adds a reaped child's counts to its parent's: a warden
    reaps its whole job). ``read_bytes``/``write_bytes``: bytes asked of the kernel;
    ``disk_*``: those that reached storage. Wait with ``os.waitid(os.P_PID, pid, os.WEXITED |
    os.WNOWAIT)`` first, reap after; empty where ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/io") as io:
            pairs = [line.split(":", 1) for line in io.read().splitlines()]
    except OSError:
        return {}
    return {IO_FIELDS[k]: int(v) for k, v in pairs if k in IO_FIELDS}


def _cpu(times: Any) -> float:
    """User and system seconds of a process and of its children that it has waited for."""
    return float(times.user + times.system + times.children_user + times.children_system)


class TreeMeter:
    """Samples a process and its descendants (use from one thread at a time)."""

    def __init__(self, pid: int | None = None) -> None:
        import psutil

        self.root = psutil.Process(pid or os.getpid())
        self._procs: dict[int, psutil.Process] = {self.root.pid: self.root}
        self.start_cpu = _cpu(self.root.cpu_times())
        self.peak = int(self.root.memory_info().rss)

    def _tree(self) -> list[Any]:
        import psutil

        try:
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        known = {self.root.pid: self.root}
        for child in children:
            cached = self._procs.get(child.pid)
            known[child.pid] = cached if cached is not None and cached == child else child
        self._procs = known
        return list(known.values())

    def measure(self, tree: bool = True) -> tuple[float, int, int]:
        """CPU seconds, resident bytes and process count of the tree (or the root alone)."""
        import psutil

        cpu, rss, count = 0.0, 0, 0
        for proc in self._tree() if tree else [self.root]:
            try:
                with proc.oneshot():
                    cpu += _cpu(proc.cpu_times())
                    rss += int(proc.memory_info().rss)
            except psutil.Error:
                continue  # ended while we looked
            count += 1
        self.peak = max(self.peak, rss)
        return cpu, rss, count
