"""System resources of a run: CPU, memory and processes of the whole process tree, and GPUs.

A sample walks the calling process and all its descendants (``psutil``; the ``Process``
objects are kept between samples) and gives the metrics

    system.cpu_percent     CPU used by the tree since the previous sample (100 = one core)
    system.memory_mib      resident memory of the tree, MiB
    system.processes       processes in the tree
    system.gpu.<i>.utilization_percent, system.gpu.<i>.memory_mib   (where NVML sees GPUs)

The summary kept on the run (``run.resources``) holds the CPU seconds the tree used while the
run was open (reaped children included), the peak resident memory seen, and the sample count.
The measuring is the process layer's ``TreeMeter`` (``runyard.processes.meter``, the one
resource meter); this module adds the rates, the GPUs and the run's summary. Walking the tree
costs a scan of the process table, so it happens only at sample time (in the
run's background thread), never when a run opens; a run that closes before its first sample
accounts for the calling process alone, measured without ``psutil`` (``os.times`` and
``/proc/self/statm``: the numbers ``psutil`` reads): the meter, and ``psutil`` with it, come
with the first sample. That saved 130 us of the 940 us a short run took to open and close, and
importing ``psutil`` (8 ms) for a process whose runs never sample (issue 16).
"""

from __future__ import annotations

import os
import time
from typing import Any

from runyard.tracking.gpu import Gpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runyard.processes.meter import TreeMeter

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Resources:
    """Samples the calling process's tree for one run (use from one thread at a time)."""

    def __init__(self, gpu: bool = True) -> None:
        self._meter: TreeMeter | None = None  # made at the first sample
        self._gpu = gpu
        self._start_cpu = own_cpu()
        self._peak = own_rss()
        if self._peak is None:  # no /proc here: psutil measures from the start
            self._peak = self._tree_meter().peak
        self._last = (time.monotonic(), self._start_cpu)
        self._samples = 0

    def _tree_meter(self) -> TreeMeter:
        if self._meter is None:
            from runyard.processes.meter import TreeMeter

            self._meter = TreeMeter()
        return self._meter

    def sample(self) -> dict[str, float]:
        """One sample of the ``system.*`` metrics."""
        meter = self._tree_meter()
        cpu, rss, count = meter.measure(tree=True)
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
        rss = None if self._meter is not None else own_rss()
        if rss is not None:  # the calling process alone, as before the first sample
            cpu, peak = own_cpu(), max(self._peak or 0, rss)
        else:
            meter = self._tree_meter()
            cpu, _, _ = meter.measure(tree=self._samples > 0)
            peak = max(self._peak or 0, meter.peak)
        return {
            "cpu_seconds": round(max(0.0, cpu - self._start_cpu), 3),
            "peak_memory_mib": round(peak / MIB, 3),
            "samples": self._samples,
        }


def own_cpu() -> float:
    """User and system seconds of this process and of the children it has waited for (what
    ``psutil.Process().cpu_times()`` adds up, from the same kernel counters)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def own_rss() -> int | None:
    """Resident bytes of this process (``psutil``'s ``memory_info().rss``), or ``None``
    without ``/proc``."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None
