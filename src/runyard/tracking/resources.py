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
accounts for the calling process alone.
"""

from __future__ import annotations

import time
from typing import Any

from runyard.processes.meter import TreeMeter
from runyard.tracking.gpu import Gpus

MIB = 1 << 20


class Resources:
    """Samples the calling process's tree for one run (use from one thread at a time)."""

    def __init__(self, gpu: bool = True) -> None:
        self._meter = TreeMeter()
        self._gpu = gpu
        self._last = (time.monotonic(), self._meter.start_cpu)
        self._samples = 0

    def sample(self) -> dict[str, float]:
        """One sample of the ``system.*`` metrics."""
        cpu, rss, count = self._meter.measure(tree=True)
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
        cpu, _, _ = self._meter.measure(tree=self._samples > 0)
        return {
            "cpu_seconds": round(max(0.0, cpu - self._meter.start_cpu), 3),
            "peak_memory_mib": round(self._meter.peak / MIB, 3),
            "samples": self._samples,
        }
