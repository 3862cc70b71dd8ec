"""Tracking runs from Python: the ``Run`` client, offline spool and ``sync``.

Layer: beside ``runyard.core`` (it may use core, stores, blobs and the model).
"""

from runyard.tracking.run import Run

__all__ = ["Run"]
