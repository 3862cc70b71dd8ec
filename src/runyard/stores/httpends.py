"""How the outbox's entries reach the server: append batches, and runs' ends.

The spool (``runyard.stores.spool``) keeps two kinds of entry: ``batch``, an append of
metrics, events and logs, de-duplicated by the server by its ``Idempotency-Key``; and ``end``,
a run's final status (with the fields, internals and metadata that go with it), kept when the
run was closed while its server was away. An end needs no key on the server: a final status is
terminal, so a resent end either applies or conflicts, and a conflict is settled by reading the
run back, by the rules the run lease follows when its owner ends a run (``core.lease``):

- the run already has a final status (this end's earlier try applied, answered too late, or
  someone else ended it): done, left as it is;
- ``canceling``: it ends ``canceled`` (the cancel came first);
- ``lost`` (its heartbeats stopped while the owner waited for the server) or any other status:
  it walks the lifecycle's shortest legal path (``lost -> running -> final``: the lifecycle
  has no ``lost -> final``, and the owner's end arriving is its coming back), each hop a
  compare-and-set, the last one carrying the end's fields.

A run the server no longer has, or an end it refuses (4xx), raises, and the spool keeps the
entry under ``rejected/`` for a person to see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from runyard.errors import ConflictError, ValidationError
from runyard.model import RunRecord, Status, codec, status_path
from runyard.stores.httpclient import HttpClient, encode_json, segment

BATCH, END = "batch", "end"  # the kinds of spooled entry
LAPS = 8  # ends tried again after someone else changed the run meanwhile
CAME_BACK = "its owner's end arrived after the server was away"


def resend(client: HttpClient, run_id: str, key: str, body: bytes, op: str = BATCH,
           patience: float | None = None) -> None:
    """Send one spooled entry (``op``: ``batch`` or ``end``); raises ``Unreachable`` while
    the server is away, another ``RunyardError`` if it refuses the entry."""
    if op == END:
        doc = orjson.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("status"), str):
            raise ValidationError("a spooled end is not a status change; see it in rejected/")
        send_end(client, run_id, doc, patience)
    elif op == BATCH:
        post_batch(client, run_id, key, body, patience)
    else:
        raise ValueError(f"unknown spooled entry {op!r}")


def post_batch(client: HttpClient, run_id: str, key: str, body: bytes,
               patience: float | None = None) -> None:
    """One append batch to ``POST /runs/{id}/batch`` under its ``Idempotency-Key``."""
    client.send("POST", f"/runs/{segment(run_id)}/batch", content=body,
                headers={"idempotency-key": key, "content-type": "application/json"},
                patience=patience)


def send_end(client: HttpClient, run_id: str, body: dict[str, Any],
             patience: float | None = None) -> RunRecord:
    """Write a run's spooled end (the body of ``POST /runs/{id}/status``); the run as it is
    then (see the module docstring for a conflict)."""
    try:
        return _status(client, run_id, body, patience)
    except ConflictError:
        pass
    for _ in range(LAPS):
        run = _get(client, run_id, patience)
        if run.status.is_final:
            return run
        try:
            return _walk(client, run, body, patience)
        except ConflictError:
            continue  # someone else moved it meanwhile: look again
    raise ConflictError(f"run {run_id} kept changing while its spooled end was sent; "
                        "end it with `runyard run cancel` or leave it to the liveness sweep")


def _walk(client: HttpClient, run: RunRecord, body: dict[str, Any],
          patience: float | None) -> RunRecord:
    """From ``run``'s status to the end's by legal hops (``canceling`` ends ``canceled``)."""
    target, reason = Status(body["status"]), body.get("reason")
    if run.status is Status.CANCELING and target is not Status.CANCELED:
        target, reason = Status.CANCELED, reason or "canceled by request"
    path = status_path(run.status, target)
    if path is None:
        raise ConflictError(f"run {run.id} is {run.status.value}; its spooled end "
                            f"({target.value}) has no legal way there")
    for hop in path[:-1]:
        run = _status(client, run.id, {"status": hop.value, "expect": run.status.value,
                                       "reason": CAME_BACK}, patience)
    return _status(client, run.id, {**body, "status": target.value, "reason": reason,
                                    "expect": run.status.value}, patience)


def _status(client: HttpClient, run_id: str, body: dict[str, Any],
            patience: float | None) -> RunRecord:
    reply = client.send("POST", f"/runs/{segment(run_id)}/status", content=encode_json(body),
                        headers={"content-type": "application/json"}, patience=patience)
    return codec.run_from_dict(reply.json())


def _get(client: HttpClient, run_id: str, patience: float | None) -> RunRecord:
    doc = client.call("GET", f"/runs/{segment(run_id)}", params={"by": "id"},
                      patience=patience)
    return codec.run_from_dict(doc)


def ended_here(run: RunRecord, status: Status, reason: str | None, now: float, *,
               fields: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None,
               internals: Mapping[str, Any] | None) -> RunRecord:
    """``run`` as its spooled end will leave it (what the caller gets back meanwhile)."""
    changes: dict[str, Any] = {**(fields or {}), "status": status, "status_reason": reason,
                               "ended": now}
    if metadata:
        changes["metadata"] = {**run.metadata, **metadata}
    if internals:
        changes["internals"] = {**run.internals, **internals}
    return run.replace(**changes)
