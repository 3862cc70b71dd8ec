"""System resources of a run: CPU, memory and processes of the whole process tree, and GPUs.

A sample walks the calling process and all its descendants (``psutil``; the ``Process``
objects are kept between samples) and gives the metrics

    system.cpu_percent     CPU used by the tree since the previous sample (100 = one core)
    system.memory_mib      resident memory of the tree, MiB
    system.processes       processes in the tree
    system.gpu.<i>.utilization_percent, system.gpu.<i>.memory_mib   (where NVML sees GPUs)

The summary kept on the run (``run.resources``) holds the CPU seconds the tree used while the
run was open (reaped children included), the peak resident memory seen, and the sample count.
Walking the tree costs a scan of the process table, so it happens only at sample time (in the
run's background thread), never when a run opens; a run that closes before its first sample
accounts for the calling process alone.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from runyard.tracking.gpu import Gpus

MIB = 1 << 20


def _cpu(times: Any) -> float:
    """User and system seconds of a process and of its children that it has waited for."""
    return float(times.user + times.system + times.children_user + times.children_system)


class Resources:
    """Samples the calling process's tree for one run (use from one thread at a time)."""

    def __init__(self, gpu: bool = True) -> None:
        self._root = psutil.Process()
        self._procs: dict[int, psutil.Process] = {self._root.pid: self._root}
        self._gpu = gpu
        self._start_cpu = _cpu(self._root.cpu_times())
        self._last = (time.monotonic(), self._start_cpu)
        self._peak = int(self._root.memory_info().rss)
        self._samples = 0

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self._root.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        known = {self._root.pid: self._root}
        for child in children:
            cached = self._procs.get(child.pid)
            known[child.pid] = cached if cached is not None and cached == child else child
        self._procs = known
        return list(known.values())

    def _measure(self, tree: bool) -> tuple[float, int, int]:
        """CPU seconds, resident bytes and process count of the tree (or the process)."""
        cpu, rss, count = 0.0, 0, 0
        for proc in self._tree() if tree else [self._root]:
            try:
                with proc.oneshot():
                    cpu += _cpu(proc.cpu_times())
                    rss += int(proc.memory_info().rss)
            except psutil.Error:
                continue  # ended while we looked
            count += 1
        self._peak = max(self._peak, rss)
        return cpu, rss, count

    def sample(self) -> dict[str, float]:
        """One sample of the ``system.*`` metrics."""
        cpu, rss, count = self._measure(tree=True)
        now = time.monotonic()
        then, cpu_then = self._last
        self._last = (now, cpu)
        self._samples += 1
        values = {
            "system.cpu_percent": max(0.0, (cpu - cpu_then) / max(now - then, 1e-6) * 100.0),
            "system.memory_mib": rss / MIB,
            "system.processes": float(count),
        }
        gpus = Gpus.open() if self._gpu else None
        if gpus is not None:
            values.update(gpus.sample())
        return values

    def summary(self) -> dict[str, Any]:
        """CPU seconds since the run opened, peak memory, and samples taken (measures now)."""
        cpu, _, _ = self._measure(tree=self._samples > 0)
        return {
            "cpu_seconds": round(max(0.0, cpu - self._start_cpu), 3),
            "peak_memory_mib": round(self._peak / MIB, 3),
            "samples": self._samples,
        }
