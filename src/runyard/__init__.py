"""runyard: one system for computational runs — define, execute, track, and keep the record.

The public names are imported lazily so that ``import runyard`` stays fast.
"""

from __future__ import annotations

TYPE_CHECKING = False  # ``typing`` itself is not imported: the command line's warm start
# (``runyard.cli.entry``) would pay for it
__version__ = "0.1.0"

_EXPORTS = {
    "open_store": "runyard.stores",
    "open_context": "runyard.core.context",
    "StoreContext": "runyard.core.context",
    "RunFilter": "runyard.stores",
    "create_run": "runyard.core.runs",
    "Status": "runyard.model",
    "Kind": "runyard.model",
    "RunyardError": "runyard.errors",
    "Run": "runyard.tracking",
    "task": "runyard.engine",
    "workflow": "runyard.engine",
    "WorkflowRun": "runyard.engine",
    "RuntimeConfiguration": "runyard.engine",
}

if TYPE_CHECKING:
    from runyard.core.context import StoreContext, open_context
    from runyard.core.runs import create_run
    from runyard.engine import RuntimeConfiguration, WorkflowRun, task, workflow
    from runyard.errors import RunyardError
    from runyard.model import Kind, Status
    from runyard.stores import RunFilter, open_store
    from runyard.tracking import Run

__all__ = [
    "Kind", "Run", "RunFilter", "RuntimeConfiguration", "RunyardError", "Status",
    "StoreContext", "WorkflowRun", "__version__", "create_run", "open_context", "open_store",
    "task", "workflow",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
