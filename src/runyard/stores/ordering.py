"""The orders a run list can be sorted in (``list_runs(order_by=...)``), and the one key that
defines them.

``created`` (the default) is the order of run ids, which sort by creation: every backend reads
it from an index and pages it by keyset (``after``). The others may scan the filtered runs:
``name``, ``status``, ``kind`` (by their text), ``started``, ``ended``, ``duration`` (``ended -
started``) and ``param:KEY`` (a top-level parameter). ``sorted_runs`` sorts with the key below
for the stores that filter in Python (memory, files); the SQL stores' ``ORDER BY``
(``sqlorder``) gives exactly the same order, which the store contract checks with mixed values.

The order, ascending (``newest_first=False``); descending reverses it:

- a parameter's numbers (int or float, compared exactly; a bool is not a number; NaN is not
  one either and counts as other), then its strings (by code point, as Python compares them),
  then every other JSON value (bool, null, list, object) by its compact JSON text as stored
  (``json.dumps(v, separators=(",", ":"))``: keys in their stored order, non-ASCII escaped);
- equal values (ties) by run id, in the same direction, so paging by offset is stable;
- runs with no value (never started, not ended, a running run's duration, no such parameter)
  come last in both directions, by id in the same direction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from runyard.errors import ValidationError
from runyard.model import RunRecord
from runyard.stores.base import check_after, page

CREATED = "created"
ORDERS = (CREATED, "name", "started", "ended", "status", "kind", "duration")
PARAM = "param:"
MAX_PARAM_KEY = 250
INDEXED = frozenset({CREATED, "name", "status", "kind"})  # what a file store's index holds

Key = tuple[Any, ...] | None  # None: the run has no value


def check_order(order_by: object) -> str:
    """``order_by`` if it names an order, else a ValidationError listing what does."""
    if isinstance(order_by, str) and (order_by in ORDERS or _param_ok(order_by)):
        return order_by
    raise ValidationError(
        f"cannot sort runs by {order_by!r:.80}; sort by one of {', '.join(ORDERS)}, "
        f"or param:KEY (a top-level parameter's name, 1-{MAX_PARAM_KEY} characters)")


def _param_ok(order_by: str) -> bool:
    return order_by.startswith(PARAM) and 1 <= len(order_by) - len(PARAM) <= MAX_PARAM_KEY


def check_listing(order_by: object, after: str | None) -> str:
    """The checked order of a ``list_runs`` call; ``after`` pages only the ``created`` order."""
    order = check_order(order_by)
    if after is not None and order != CREATED:
        raise ValidationError(f"list_runs(after=...) pages only the created order, not "
                              f"{order!r:.80}; page with offset instead")
    if after is not None:
        check_after(after)
    return order


def param_of(order_by: str) -> str | None:
    """The parameter's name of a ``param:KEY`` order, else None."""
    return order_by[len(PARAM):] if order_by.startswith(PARAM) else None


def value_key(value: Any) -> tuple[Any, ...]:
    """Where one parameter value sorts: numbers, then strings, then other JSON by its text."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not (
            isinstance(value, float) and math.isnan(value)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, separators=(",", ":"), default=str))


def _param_key(name: str) -> Callable[[RunRecord], Key]:
    def key(run: RunRecord) -> Key:
        return value_key(run.parameters[name]) if name in run.parameters else None
    return key


def _duration(run: RunRecord) -> Key:
    if run.started is None or run.ended is None:
        return None
    return (run.ended - run.started,)


def _field(name: str) -> Callable[[RunRecord], Key]:
    def key(run: RunRecord) -> Key:
        value = getattr(run, name)
        return None if value is None else (getattr(value, "value", value),)
    return key


def sort_key(order_by: str) -> Callable[[RunRecord], Key]:
    """A run's key in the checked order ``order_by`` (None: no value; sorts last)."""
    name = param_of(order_by)
    if name is not None:
        return _param_key(name)
    if order_by == "duration":
        return _duration
    return _field("id" if order_by == CREATED else order_by)


def sorted_runs(runs: Sequence[RunRecord], order_by: str, newest_first: bool
                ) -> list[RunRecord]:
    """``runs`` in the checked order ``order_by``: by key, then id, in the one direction;
    the runs with no value after the others, by id in the same direction."""
    key = sort_key(order_by)
    valued: list[tuple[Any, str, RunRecord]] = []
    missing: list[tuple[str, RunRecord]] = []
    for run in runs:
        found = key(run)
        if found is None:
            missing.append((run.id, run))
        else:
            valued.append((found, run.id, run))
    valued.sort(key=lambda item: item[:2], reverse=newest_first)
    missing.sort(key=lambda item: item[0], reverse=newest_first)
    return [item[-1] for item in valued] + [item[-1] for item in missing]


def page_by(runs: list[RunRecord], order_by: str, newest_first: bool, limit: int | None,
            offset: int, after: str | None = None) -> list[RunRecord]:
    """``base.page`` in any checked order (``after``: only with ``created``)."""
    if order_by == CREATED:
        return page(runs, newest_first, limit, offset, after)
    ordered = sorted_runs(runs, order_by, newest_first)
    return ordered[offset:None if limit is None else offset + limit]
