"""Where work executes: one ``Runtime`` protocol (``base``), one module per runtime.

``in_process`` runs callables on a thread pool in the caller's process, ``process`` on a pool of
local worker processes, ``ray`` on a Ray cluster. ``ray`` is imported only when used.
"""

from runyard.runtimes.base import Runtime, RuntimeBase

__all__ = ["Runtime", "RuntimeBase"]
