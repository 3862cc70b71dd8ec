"""Where work executes: one ``Runtime`` protocol (``base``), one module per runtime.

``in_process`` runs callables on a thread pool in the caller's process, ``process`` on a pool of
local worker processes, ``ray`` on a Ray cluster. ``ray`` is imported only when used.
The protocol's names are imported when first asked for: a tracked run uses ``threads`` alone,
and ``base`` (``concurrent.futures``, ``logging``) would cost its first ``Run()`` 4 ms.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runyard.runtimes.base import Runtime, RuntimeBase

__all__ = ["Runtime", "RuntimeBase"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from runyard.runtimes import base

        return getattr(base, name)
    raise AttributeError(f"module 'runyard.runtimes' has no attribute {name!r}")
