"""GPU utilisation and used memory through NVML (``pip install 'runyard[gpu]'``).

``pynvml`` (the ``nvidia-ml-py`` package) is imported on first use. With no package, no
driver or no GPU, ``Gpus.open()`` returns ``None`` and the run records no GPU metrics; a GPU
that fails later is skipped in that sample. NVML is initialised once per process.
"""

from __future__ import annotations

import threading
from typing import Any

MIB = 1 << 20

_lock = threading.Lock()
_opened = False
_gpus: Gpus | None = None


class Gpus:
    """The GPUs NVML sees, sampled as ``system.gpu.<index>.*`` metrics."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml = nvml
        self._handles = handles

    @classmethod
    def open(cls) -> Gpus | None:
        """The process's NVML view, or ``None`` where there is no NVML or no GPU."""
        global _opened, _gpus
        with _lock:
            if not _opened:
                _opened = True
                _gpus = _init()
            return _gpus

    def __len__(self) -> int:
        return len(self._handles)

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for index, handle in enumerate(self._handles):
            try:
                busy = self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                used = self._nvml.nvmlDeviceGetMemoryInfo(handle).used
            except self._nvml.NVMLError:
                continue  # this GPU did not answer now; the others still count
            values[f"system.gpu.{index}.utilization_percent"] = float(busy)
            values[f"system.gpu.{index}.memory_mib"] = used / MIB
        return values


def _init() -> Gpus | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    except pynvml.NVMLError:
        return None  # no driver, no device, or no permission: no GPU metrics
    return Gpus(pynvml, handles) if handles else None
