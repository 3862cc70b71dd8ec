"""Small factories for records used by tests."""

from __future__ import annotations

import itertools
from typing import Any

from runyard.model import RunRecord, new_id

_counter = itertools.count()


def make_run(**fields: Any) -> RunRecord:
    """A valid new run with a unique id and name; any field can be given."""
    run_id = fields.pop("id", None) or new_id()
    name = fields.pop("name", None) or f"run-{next(_counter)}-{run_id[-6:].lower()}"
    return RunRecord(id=run_id, name=name, **fields)
