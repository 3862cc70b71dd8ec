"""The writes of the ``http(s)://`` store that go through its outbox: appends and runs' ends.

Kept apart from ``http`` to keep each module small; ``HttpStore`` inherits it. Appends
(metrics, events, logs) go to ``POST /runs/{id}/batch``, each batch under a fresh
``Idempotency-Key`` kept across its retries, so a resend never doubles a row; a batch that
cannot reach the server goes to the on-disk spool (``spool``) and is resent in order.

A run's end (a transition to a final status) that cannot reach the server either (or that
would overtake a run's data still spooled) is spooled behind them the same way, and the caller
gets the run as the end will leave it (built from the last state of the run this store saw):
``Run.close()`` returns, and the end is sent once the server is back, by this store, the next
one opened for that server, or ``runyard sync`` (``httpends`` says how a resent end settles).
Other writes (tags, metadata, rename ...) are not spooled: they raise after their retries.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.errors import ValidationError
from runyard.model import Event, LogLine, Metric, RunRecord, Status
from runyard.stores.base import check_fields
from runyard.stores.httpclient import HttpClient, Unreachable, encode_json, segment
from runyard.stores.httpends import END, ended_here, post_batch, resend
from runyard.stores.httpwire import columns_of, encode_batch
from runyard.stores.spool import Spool
from runyard.stores.streams import MetricColumns, check_batch_key

APPEND_PATIENCE_S = 2.0  # how long an append retries before it is spooled
SPOOL_PATIENCE_S = 2.0  # one resend try of a spooled entry
KNOWN_RUNS = 1024  # the runs whose last seen state is kept (what a spooled end builds on)

log = logging.getLogger(__name__)


class OutboxOverHttp:
    """Appends and ends over a server's ``/batch`` and ``/status`` routes, spooled while it
    is away (see the module docstring)."""

    client: HttpClient
    _spool: Spool
    _known: OrderedDict[str, RunRecord]

    # -- appends: one batch each, exactly once ---------------------------------------------
    def append_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        self._append(run_id, {"metrics": MetricColumns(*columns_of(metrics))})

    def append_metric_columns(self, run_id: str, names: Sequence[str], values: Sequence[float],
                              steps: Sequence[int | None], times: Sequence[float]) -> None:
        if not len(names) == len(values) == len(steps) == len(times):
            raise ValidationError(
                "metric columns (names, values, steps, times) must be equally long")
        self._append(run_id, {"metrics": MetricColumns(names, values, steps, times)})

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        self._append(run_id, {"events": events})

    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        self._append(run_id, {"logs": lines})

    def append_batch(self, run_id: str, key: str, *, metrics: MetricColumns | None = None,
                     events: Sequence[Event] = (), logs: Sequence[LogLine] = ()) -> bool:
        """Sent now, under the caller's key (never spooled: the answer says if it applied)."""
        body = encode_batch({"metrics": metrics, "events": events, "logs": logs})
        reply = self.client.send("POST", f"/runs/{segment(run_id)}/batch", content=body,
                                 headers={"idempotency-key": check_batch_key(key),
                                          "content-type": "application/json"})
        return bool(reply.json()["applied"])

    def _append(self, run_id: str, doc: dict[str, Any]) -> None:
        """Send one batch under a fresh key; spool it if the server stays away (and while
        anything is spooled, so no append overtakes a spooled one)."""
        key = os.urandom(16).hex()
        body = encode_batch(doc)
        if self._spool.pending:
            self._spool.add(run_id, key, body)
            return
        try:
            post_batch(self.client, run_id, key, body, APPEND_PATIENCE_S)
        except Unreachable:
            self._spool.add(run_id, key, body)

    def _resend(self, run_id: str, key: str, body: bytes, op: str) -> None:
        resend(self.client, run_id, key, body, op, SPOOL_PATIENCE_S)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for the spool to be sent (up to ``timeout`` seconds); whether it was."""
        return self._spool.drain() if timeout is None else self._spool.drain(timeout)

    # -- ends ------------------------------------------------------------------------------
    def _seen(self, run: RunRecord) -> RunRecord:
        """Remember ``run`` as this store last saw it (the newest ``KNOWN_RUNS`` runs)."""
        known = self._known  # (an OrderedDict: each step atomic, so threads may share it)
        known[run.id] = run
        known.move_to_end(run.id)
        if len(known) > KNOWN_RUNS:
            known.popitem(last=False)
        return run

    def _end_now(self, status: Status) -> bool:
        """Before a status write: whether it must go to the spool without a try (a final
        status behind the run's data still spooled once a drain gave up)."""
        if not self._spool.pending:
            return False
        return not self._spool.drain() and status.is_final

    def _end_later(self, run_id: str, body: dict[str, Any], fields: Mapping[str, Any] | None,
                   why: Unreachable | None = None) -> RunRecord:
        """Spool a run's end (``body``: that of ``POST /status``, its time fixed now); the
        run as it will be. Without a state of the run seen here, ``why`` is raised."""
        known = self._known.get(run_id)
        if known is None:
            raise why or Unreachable(f"the runyard server at {self.client.origin} is away "
                                     f"and run {run_id} was not seen here; try again later")
        if fields:
            check_fields(fields)
        body = {**body, "now": body["now"] if body["now"] is not None else time.time()}
        self._spool.add(run_id, os.urandom(16).hex(), encode_json(body), op=END)
        log.warning("the runyard server at %s did not take run %s's end now: end (%s) is "
                    "spooled in %s and will be sent once the server answers (or by `runyard "
                    "sync`)", self.client.origin, run_id, body["status"], self._spool.folder)
        return self._seen(ended_here(known, Status(body["status"]), body["reason"],
                                     body["now"], fields=fields, metadata=body["metadata"],
                                     internals=body["internals"]))
