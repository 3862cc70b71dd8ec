"""Starting a workflow named by ``module:function``, detached, for callers that only have text.

``runyard workflow run`` and the server's ``POST /runs/workflow`` name a workflow by where it
is importable. ``import_workflow`` finds it (every way that can fail is one ``ValidationError``
line); ``start_detached`` traces it with the given arguments, records the run and hands it to a
detached supervisor (``runyard.engine.detached``) whatever its runtime, so the caller, a server
worker included, never executes the workflow itself and may stop without stopping it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import RunyardError, ValidationError

if TYPE_CHECKING:
    from runyard.engine.workflow import WorkflowDef
    from runyard.model import RunRecord
    from runyard.stores import RunStore


def importable_here() -> None:
    """Modules in the working directory import, as they do for ``python -m``."""
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def import_workflow(target: str) -> WorkflowDef:
    """The ``@workflow`` at ``module:function`` (the working directory is importable)."""
    from runyard.engine.workflow import WorkflowDef

    module_name, sep, attr = str(target).partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"invalid workflow {target!r}: write it as module:function")
    importable_here()
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except ImportError as exc:
        raise ValidationError(f"cannot import {module_name!r}: {exc}") from None
    except AttributeError:
        raise ValidationError(f"module {module_name!r} has no {attr!r}") from None
    except SyntaxError as exc:
        raise ValidationError(f"cannot import {module_name!r}: {syntax_problem(exc)}") from None
    except (Exception, SystemExit) as exc:  # the module failed as it was imported: its code
        raise ValidationError(f"cannot import {module_name!r}: importing it raised "
                              f"{type(exc).__name__}: {exc}") from None
    if not isinstance(found, WorkflowDef):
        raise ValidationError(f"{target} is not a @workflow")
    return found


def syntax_problem(exc: SyntaxError) -> str:
    """``syntax error in FILE line N: MESSAGE`` (an ``IndentationError`` says so)."""
    kind = "indentation error" if isinstance(exc, IndentationError) else "syntax error"
    where = f" in {exc.filename}" if exc.filename else ""
    line = f" line {exc.lineno}" if exc.lineno else ""
    return f"{kind}{where}{line}: {exc.msg}"


def start_detached(store: RunStore, target: str, args: Sequence[Any] = (),
                   kwargs: Mapping[str, Any] | None = None, runtime: str = "in_process", *,
                   name: str | None = None, folder: str = "/",
                   tags: Iterable[str] = ()) -> RunRecord:
    """Run the workflow at ``target`` with ``args``/``kwargs`` under a detached supervisor
    using ``runtime`` (a configuration name); the run as recorded, once handed over."""
    from runyard.engine.config import resolve
    from runyard.engine.execution import launch_detached
    from runyard.engine.run import WorkflowRun

    definition = import_workflow(target)
    config = resolve(runtime)
    try:
        plan = definition(*args, **dict(kwargs or {}))
    except RunyardError:
        raise
    except (Exception, SystemExit) as exc:  # the workflow's code, or arguments it refuses
        raise ValidationError(f"calling workflow {target} raised {type(exc).__name__}: "
                              f"{exc}") from None
    prepared = WorkflowRun.prepare(plan, config, store=store, name=name, folder=folder,
                                   tags=tuple(tags))
    launch_detached(store, store.get_run(prepared.run_id))
    return store.get_run(prepared.run_id)
