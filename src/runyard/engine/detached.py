"""``python -m runyard.engine.detached STORE_URL RUN_ID``: execute one run, detached.

Started by ``launch_detached``. It opens the store, rebuilds the run's plan, takes ownership
(its own pid, already recorded by the launcher) and executes the run with the run's runtime
configuration, then exits. Whatever goes wrong before the run can start fails the run with the
reason, so nobody waits for a run that will never go on.
"""

from __future__ import annotations

import contextlib
import sys

from runyard.core.context import context_of
from runyard.engine.config import from_dict
from runyard.engine.execution import Execution
from runyard.engine.workflow import load_plan
from runyard.errors import ConflictError, RunyardError
from runyard.model import Status
from runyard.stores import RunStore, open_store


def main(argv: list[str]) -> int:
    store_url, run_id = argv
    store = open_store(store_url)
    run = store.get_run(run_id)
    try:
        plan = load_plan(run.internals["plan"], context_of(store).blobs)
        config = from_dict(str(run.config.get("runtime_name")), run.config.get("runtime"))
        execution = Execution(store, run, plan, config)
        execution.start()
    except RunyardError as exc:
        _fail(store, run_id, str(exc))
        return 1
    execution.finished.wait()
    return 0


def _fail(store: RunStore, run_id: str, reason: str) -> None:
    with contextlib.suppress(ConflictError):
        store.update_status(run_id, Status.FAILED, reason)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
