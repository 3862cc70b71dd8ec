"""The ``http(s)://`` store: a runyard server's REST API (``/api/v1``) behind ``RunStore``.

A server URL is a store URL like any other, so the tracking client, workflows, command runs,
``store copy`` and ``sync`` work against a server as against a local store. Requests go through
one pooled keep-alive client per store (``httpclient``: retries with backoff on connection
errors and 5xx; the server's errors raised as the same ``runyard.errors`` classes).

Appends (metrics, events, logs), each batch under its own ``Idempotency-Key``, and a run's
end go through ``httpoutbox``: spooled on disk (``spool``) while the server is away and resent
in order, so ``Run.close()`` returns during an outage. Other writes raise after their retries,
and are made safe to resend: when a write whose earlier try may have reached the server
meets a conflict, the store reads the run back, and a run already as asked counts as done.
The registry (codespecs, buffers) is in ``httpregistry``, the wire forms in ``httpwire``;
tokens are managed on the server's own store, never through this one.
"""

from __future__ import annotations

import re
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runyard.errors import ConfigError, ConflictError, RunNotFound
from runyard.model import Artifact, Attempt, Event, LogLine, Metric, RunRecord, Status, Step, codec
from runyard.model.tokens import TokenRecord
from runyard.stores.base import MetricSummary, RunFilter
from runyard.stores.credentials import remember, token_for
from runyard.stores.httpclient import HttpClient, Unreachable, origin_of
from runyard.stores.httpoutbox import OutboxOverHttp
from runyard.stores.httpregistry import RegistryOverHttp
from runyard.stores.httpwire import ITEM_FROM_DICT, ITEM_TO_DICT, fields_doc, filter_params, stream
from runyard.stores.location import redact_url
from runyard.stores.ordering import CREATED, check_listing
from runyard.stores.spool import Spool
from runyard.stores.streams import MetricSeries, check_bounds, stream_slice

if TYPE_CHECKING:
    from runyard.stores.httpblobs import ServerBlobs

RUN_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")  # what a run's id or name can be
MIN_STEP = -(2**63)
PAGE = 1000  # the most runs one listing request asks for
MAX_ROWS = 1_000_000  # the most stream rows one request may ask for


class HttpStore(OutboxOverHttp, RegistryOverHttp):
    """The runs of the runyard server at ``url`` (``http(s)://[TOKEN@]HOST:PORT``)."""

    def __init__(self, url: str, *, token: str | None = None) -> None:
        self.origin, in_url = origin_of(url)
        self.url = self.origin  # (never the token: URLs reach logs, records, other argv)
        found = token_for(self.origin, token or in_url)
        if in_url:  # (the store's url has no token: stores opened from it, such as its
            remember(self.origin, in_url)  # context's, in this process use that one)
        self.client = HttpClient(self.origin, found)
        self._spool = Spool(self.origin, self._resend)
        self._known: OrderedDict[str, RunRecord] = OrderedDict()  # (OutboxOverHttp)
        self._spool.adopt()  # batches left by a process that is gone go first

    def __repr__(self) -> str:
        return f"HttpStore({redact_url(self.url)!r})"

    @property
    def blob_client(self) -> ServerBlobs:
        """What ``runyard.blobs.remote.RemoteBlobStore`` talks to the server through."""
        from runyard.stores.httpblobs import ServerBlobs

        return ServerBlobs(self.client)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        doc = codec.run_to_dict(run)
        return self._write_run("POST", "/runs", doc, settled=lambda: self._same_run(run))

    def _same_run(self, run: RunRecord) -> RunRecord | None:
        """The stored run if an earlier try created it as asked (RunExists / NameTaken)."""
        try:
            stored = self.get_run(run.id)
        except RunNotFound:
            return None
        return stored if codec.run_to_dict(stored) == codec.run_to_dict(run) else None

    def get_run(self, run_id: str) -> RunRecord:
        return self._run("GET", f"/runs/{rid(run_id)}", params={"by": "id"})

    def get_run_by_name(self, name: str) -> RunRecord:
        return self._run("GET", f"/runs/{rid(name)}", params={"by": "name"})

    def find_run(self, ref: str) -> RunRecord:
        return self._run("GET", f"/runs/{rid(ref)}", params={"by": "ref"})

    def list_runs(self, filter: RunFilter | None = None, *, newest_first: bool = True,
                  limit: int | None = None, offset: int = 0, after: str | None = None,
                  order_by: str = "created") -> list[RunRecord]:
        """Pages of up to ``PAGE`` runs: in the created order each after the last one's id
        (``next_cursor``), in the others from the offset the server gives (``next_offset``)."""
        order = check_listing(order_by, after)
        query = [*filter_params(filter), ("order", "newest" if newest_first else "oldest"),
                 ("sort", None if order == CREATED else order)]
        found: list[RunRecord] = []
        cursor, skip = after, offset
        while limit is None or len(found) < limit:
            want = PAGE if limit is None else min(PAGE, limit - len(found))
            page = self.client.call("GET", "/runs", params=[
                *query, ("limit", want), ("offset", skip or None), ("cursor", cursor)])
            found.extend(codec.run_from_dict(doc) for doc in page["runs"])
            if order == CREATED:
                cursor, skip = page.get("next_cursor"), 0
            else:
                skip = page.get("next_offset")
            if not (cursor or skip) or len(page["runs"]) < want:
                break
        return found

    def count_runs(self, filter: RunFilter | None = None) -> int:
        return int(self.client.call("GET", "/runs/count", params=filter_params(filter))["count"])

    def folder_counts(self, filter: RunFilter | None = None) -> dict[str, int]:
        found = self.client.call("GET", "/folders", params=filter_params(filter))["folders"]
        return {str(folder): int(found[folder]) for folder in sorted(found)}

    def update_status(self, run_id: str, status: Status, reason: str | None = None, *,
                      expect: Status | None = None, now: float | None = None,
                      metadata: Mapping[str, Any] | None = None,
                      internals: Mapping[str, Any] | None = None,
                      fields: Mapping[str, Any] | None = None) -> RunRecord:
        body = {"status": Status(status).value, "reason": reason,
                "expect": None if expect is None else Status(expect).value, "now": now,
                "metadata": None if metadata is None else dict(metadata),
                "internals": None if internals is None else dict(internals),
                "fields": None if fields is None else fields_doc(fields)}

        if self._end_now(Status(status)):  # (behind the run's data still spooled)
            return self._end_later(run_id, body, fields)

        def settled() -> RunRecord | None:  # an earlier try made the transition
            run = self.get_run(run_id)
            return run if run.status is Status(status) and run.status_reason == reason else None

        try:
            return self._write_run("POST", f"/runs/{rid(run_id)}/status", body, settled=settled)
        except Unreachable as exc:
            if not Status(status).is_final:
                raise
            return self._end_later(run_id, body, fields, exc)

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        return self._run("PATCH", f"/runs/{rid(run_id)}", fields_doc(fields))

    def add_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        return self._run("POST", f"/runs/{rid(run_id)}/tags", {"add": list(tags)})

    def remove_tags(self, run_id: str, tags: Iterable[str]) -> RunRecord:
        return self._run("POST", f"/runs/{rid(run_id)}/tags", {"remove": list(tags)})

    def merge_metadata(self, run_id: str, data: Mapping[str, Any]) -> RunRecord:
        return self._run("POST", f"/runs/{rid(run_id)}/metadata", {"data": dict(data)})

    def set_parameters(self, run_id: str, params: Mapping[str, Any]) -> RunRecord:
        return self._run("POST", f"/runs/{rid(run_id)}/parameters", {"params": dict(params)})

    def rename_run(self, run_id: str, new_name: str) -> RunRecord:
        def settled() -> RunRecord | None:
            run = self.get_run(run_id)
            return run if run.name == new_name else None

        return self._write_run("POST", f"/runs/{rid(run_id)}/rename", {"name": new_name},
                               settled=settled)

    def delete_run(self, run_id: str) -> None:
        def settled() -> bool | None:  # an earlier try deleted it
            try:
                self.get_run(run_id)
            except RunNotFound:
                return True
            return None

        self._write("DELETE", f"/runs/{rid(run_id)}", None, settled=settled)
        self._known.pop(run_id, None)

    # -- steps and attempts --------------------------------------------------------------------
    def upsert_step(self, run_id: str, step: Step) -> Step:
        doc = self.client.call("PUT", f"/runs/{rid(run_id)}/steps/one",
                               codec.step_to_dict(step))
        return codec.step_from_dict(doc)

    def upsert_attempt(self, run_id: str, step_name: str, attempt: Attempt) -> Step:
        doc = self.client.call("POST", f"/runs/{rid(run_id)}/steps/attempt",
                               {"step": step_name, "attempt": codec.attempt_to_dict(attempt)})
        return codec.step_from_dict(doc)

    def upsert_steps(self, run_id: str, steps: Sequence[Step]) -> None:
        self.client.send("PUT", f"/runs/{rid(run_id)}/steps",
                         {"steps": [codec.step_to_dict(s) for s in steps]})

    def get_step(self, run_id: str, name: str) -> Step:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/steps/one", params={"name": name})
        return codec.step_from_dict(doc)

    def get_steps(self, run_id: str) -> list[Step]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/steps")
        return [codec.step_from_dict(s) for s in doc["steps"]]

    # -- reads ---------------------------------------------------------------------------------
    def read_metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/metrics", params={"name": name})
        return codec.metrics_from_columns(doc)

    def read_metric_series(self, run_id: str, name: str, *,
                           steps: tuple[int | None, int | None] | None = None,
                           times: tuple[float | None, float | None] | None = None,
                           ) -> MetricSeries:
        low, high = check_bounds(steps, "step") or (None, None)
        early, late = check_bounds(times, "time") or (None, None)
        if steps is not None and low is None and high is None:
            low = MIN_STEP  # (an open range still leaves out the values with no step)
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/metrics", params={
            "name": name, "step_min": low, "step_max": high, "time_min": early,
            "time_max": late})
        _, values, step_list, stamps = codec.columns_from_dict(doc)
        no_step = [i for i, s in enumerate(step_list) if s is None]
        return MetricSeries(array("d", values), array("q", [s or 0 for s in step_list]),
                            array("d", stamps), no_step)

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/metrics/summary")
        return [MetricSummary(d["name"], d["count"], codec.decode_number(d["last"]),
                              d["last_step"], codec.decode_number(d["minimum"]),
                              codec.decode_number(d["maximum"])) for d in doc["metrics"]]

    def read_events(self, run_id: str, *, since: float | None = None,
                    tail: int | None = None) -> list[Event]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/events",
                               params={"since": since, "tail": tail})
        return codec.events_from_list(doc["events"])

    def read_logs(self, run_id: str, *, step: str | None = None, since: float | None = None,
                  tail: int | None = None) -> list[LogLine]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/logs",
                               params={"step": step, "since": since, "tail": tail})
        return codec.loglines_from_list(doc["lines"])

    def append_missing(self, run_id: str, kind: str, items: Sequence[Any], start: int) -> int:
        encode = ITEM_TO_DICT[stream(kind)]
        doc = self.client.call("POST", f"/runs/{rid(run_id)}/streams/{kind}/missing",
                               {"start": start, "items": [encode(i) for i in items]})
        return int(doc["appended"])

    def read_from(self, run_id: str, kind: str, start: int,
                  limit: int | None = None) -> list[Any]:
        decode = ITEM_FROM_DICT[stream(kind)]
        stream_slice(start, limit)
        found: list[Any] = []
        while limit is None or len(found) < limit:
            want = None if limit is None else min(limit - len(found), MAX_ROWS)
            doc = self.client.call("GET", f"/runs/{rid(run_id)}/streams/{kind}",
                                   params={"start": start + len(found), "limit": want})
            found.extend(decode(item) for item in doc["items"])
            if not doc["items"] or limit is None:
                break
        return found

    # -- data catalog --------------------------------------------------------------------------
    def add_artifact(self, run_id: str, artifact: Artifact) -> None:
        self.add_artifacts(run_id, [artifact])

    def add_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        self.client.send("POST", f"/runs/{rid(run_id)}/artifacts",
                         {"artifacts": [codec.artifact_to_dict(a) for a in artifacts]})

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        doc = self.client.call("GET", f"/runs/{rid(run_id)}/artifacts")
        return [codec.artifact_from_dict(a) for a in doc["artifacts"]]

    # -- tokens: the server's own business ---------------------------------------------------
    def add_token(self, token: TokenRecord) -> TokenRecord:
        raise tokens_elsewhere()

    def find_token(self, digest: str) -> TokenRecord | None:
        raise tokens_elsewhere()

    def list_tokens(self) -> list[TokenRecord]:
        raise tokens_elsewhere()

    def revoke_token(self, name: str, now: float | None = None) -> TokenRecord:
        raise tokens_elsewhere()

    # -- plumbing ------------------------------------------------------------------------------
    def _run(self, method: str, path: str, body: Any = None, *,
             params: Mapping[str, Any] | None = None) -> RunRecord:
        return self._seen(codec.run_from_dict(self.client.call(method, path, body,
                                                               params=params)))

    def _write_run(self, method: str, path: str, body: Any, *,
                   settled: Callable[[], RunRecord | None]) -> RunRecord:
        found = self._write(method, path, body, settled=settled)
        return self._seen(found if isinstance(found, RunRecord)
                          else codec.run_from_dict(found.json()))

    def _write(self, method: str, path: str, body: Any, *,
               settled: Callable[[], Any]) -> Any:
        """A write that may be resent: a conflict after a try that may have reached the
        server is checked with ``settled`` (what to return if that try did the work, else
        None); the ``Reply`` otherwise."""
        try:
            return self.client.send(method, path, body)
        except (ConflictError, RunNotFound) as exc:
            if not getattr(exc, "resent", False):
                raise
            done = settled()
            if done is None:
                raise
            return done

    def close(self, drain: float | None = None) -> None:
        """Send what is spooled (waiting ``drain`` seconds at most, default
        ``spool.DRAIN_S``: the rest stays on disk for the next store or ``runyard sync``),
        and close the connections (they reopen if the store is used again)."""
        if drain is None:
            self._spool.close()
        else:
            self._spool.close(drain)
        self.client.close()

    def __enter__(self) -> HttpStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rid(ref: str) -> str:
    """A run id or name as a path segment; RunNotFound for one no run can have (``..``, a
    slash, too long: it must not reach another route)."""
    if not isinstance(ref, str) or not RUN_REF.fullmatch(ref):
        raise RunNotFound(str(ref))
    return ref


def tokens_elsewhere() -> ConfigError:
    return ConfigError("manage tokens on the server's own store (`runyard server token "
                       "create|list|revoke` where the server runs), not through an http store")
