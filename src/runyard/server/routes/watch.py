"""Server-sent events: follow one run (status, metrics, events, log lines) or the run list.

Each stream polls the store (a few times a second) and keeps its own positions, so any worker
process can serve any watcher and nothing is shared between them. ``GET /runs/{id}/watch``
sends ``status`` (the run, when it changes), ``metrics``/``events``/``logs`` (new rows, by
``read_from`` position; each carries an ``id`` that a reconnecting client returns as
``Last-Event-ID`` to resume where it left off) and ``end`` once the run is terminal and every
row written before that is sent. ``GET /watch/runs`` follows the newest runs of the filtered
list and every active one (not final), however old: it sends ``run`` for each followed run
that is new or changed (an old running run's end included: it is sent once more as it leaves
the active set) and ``removed`` only for one deleted or no longer matching the filters (a run
merely pushed down by newer ones is not news). A comment line every 15 s keeps proxies from
closing a quiet stream.

A stream stops when its client goes (Starlette cancels it) and when the server shuts down:
uvicorn waits for open responses before it exits, so each stream watches uvicorn's
``should_exit`` (found through the SIGTERM handler uvicorn installs) and returns by itself.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from runyard.errors import NotFoundError, StoreError
from runyard.model import Status, codec
from runyard.server.routes.runs import DEFAULT_LIMIT, MAX_LIMIT, run_filter
from runyard.stores.base import RunFilter
from runyard.stores.streams import STREAMS

if TYPE_CHECKING:
    from runyard.model import RunRecord
    from runyard.stores.base import RunStore

router = APIRouter(tags=["watch"])

POLL = 0.3  # seconds between polls of the store
LIST_POLL = 0.5
HEARTBEAT = 15.0  # seconds of silence before a keep-alive comment
BATCH = 10_000  # rows of a stream per read
ACTIVE_MAX = 1_000  # active runs a list watcher follows beyond the newest
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "description": "A stream of server-sent events (text/event-stream).",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
QUIET = ("heartbeat", "resources")  # run fields whose change alone is not news
_LAST_ID = re.compile(r"(metrics|events|logs)=(\d{1,18})")


def store_of(request: Request) -> RunStore:
    store: RunStore = request.app.state.context.store
    return store


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event; orjson writes no newline, so ``data`` is one line."""
    import orjson

    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def face(run: RunRecord) -> dict[str, Any]:
    """What a watcher is told about: the run without its heartbeat and resource samples."""
    doc = codec.run_to_dict(run)
    for key in QUIET:
        doc.pop(key, None)
    return doc


def shutting_down() -> Callable[[], bool]:
    """Whether the serving uvicorn has begun to shut down: its SIGTERM handler is the bound
    ``handle_exit`` of its ``Server``, whose ``should_exit`` turns true on the first signal."""
    server = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if server is None or not hasattr(server, "should_exit"):
        return lambda: False
    return lambda: bool(server.should_exit) or bool(getattr(server, "force_exit", False))


async def pause(seconds: float, stopping: Callable[[], bool]) -> bool:
    """Sleep ``seconds`` in short naps; False as soon as the server is shutting down."""
    deadline = time.monotonic() + seconds
    while not stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        await anyio.sleep(min(left, 0.1))
    return False


def positions_from(last_id: str | None, kinds: list[str]) -> dict[str, int]:
    """Where each stream resumes: the client's ``Last-Event-ID`` (``metrics=N,logs=M``), else
    the start."""
    found = dict(_LAST_ID.findall(last_id or ""))
    return {kind: int(found.get(kind, 0)) for kind in kinds}


def position_id(positions: dict[str, int]) -> str:
    return ",".join(f"{kind}={at}" for kind, at in positions.items())


PAYLOAD: dict[str, Callable[[list[Any]], Any]] = {
    "metrics": codec.metrics_to_columns,
    "events": lambda rows: {"events": [codec.event_to_dict(e) for e in rows]},
    "logs": lambda rows: {"lines": [codec.logline_to_dict(line) for line in rows]},
}


@router.get("/runs/{run_id}/watch", response_class=StreamingResponse, responses=SSE_ANSWER,
            summary="Follow a run: status changes, new metrics, events and log lines (SSE)")
async def watch_run(
    request: Request, run_id: str, metrics: bool = False, events: bool = False,
    logs: bool = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
) -> StreamingResponse:
    store = store_of(request)
    run = await run_in_threadpool(store.get_run, run_id)  # 404 before the stream starts
    wanted = {"metrics": metrics, "events": events, "logs": logs}
    kinds = [kind for kind in STREAMS if wanted[kind]]
    follower = follow_run(store, run.id, positions_from(last_event_id, kinds), shutting_down())
    return StreamingResponse(follower, media_type="text/event-stream", headers=SSE_HEADERS)


async def follow_run(store: RunStore, run_id: str, positions: dict[str, int],
                     stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    follower = RunFollower(store, run_id, positions)
    quiet_since = time.monotonic()
    while True:
        sent, over, drained = await follower.poll()
        for chunk in sent:
            yield chunk
        if over:
            return
        quiet_since = time.monotonic() if sent else quiet_since
        if time.monotonic() - quiet_since >= HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        if stopping() or (drained and not await pause(POLL, stopping)):
            return


class RunFollower:
    """What one watcher of a run has been sent: the run as last shown, each stream's
    position."""

    def __init__(self, store: RunStore, run_id: str, positions: dict[str, int]) -> None:
        self.store, self.run_id, self.positions = store, run_id, positions
        self.shown: dict[str, Any] | None = None

    async def poll(self) -> tuple[list[bytes], bool, bool]:
        """The events of one look at the store; whether the stream is over; whether every
        stream was read to its end. A store error (busy, restarting) ends the look early,
        keeping what was read: the next poll goes on from there."""
        sent: list[bytes] = []
        try:
            run = await run_in_threadpool(self.store.get_run, self.run_id)
        except NotFoundError:
            return [sse("removed", {"id": self.run_id})], True, True
        except StoreError:
            return sent, False, True
        if face(run) != self.shown:
            self.shown = face(run)
            sent.append(sse("status", codec.run_to_dict(run)))
        drained = True
        for kind in self.positions:
            try:
                rows = await run_in_threadpool(self.store.read_from, self.run_id, kind,
                                               self.positions[kind], BATCH)
            except StoreError:
                return sent, False, True
            if rows:
                self.positions[kind] += len(rows)
                sent.append(sse(kind, PAYLOAD[kind](rows), position_id(self.positions)))
                drained = drained and len(rows) < BATCH
        if run.status.is_final and drained:  # the status was read before the rows
            sent.append(sse("end", {"id": self.run_id, "status": run.status.value}))
            return sent, True, True
        return sent, False, drained


@router.get("/watch/runs", response_class=StreamingResponse, responses=SSE_ANSWER,
            summary="Follow the run list: runs that enter it or change, and those that leave")
async def watch_runs(request: Request, wanted: Annotated[RunFilter, Depends(run_filter)],
                     limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
                     ) -> StreamingResponse:
    """The newest ``limit`` runs that match the filters (those of ``GET /runs``) and every
    active one among them (up to ACTIVE_MAX, newest first), however old, followed."""
    store = store_of(request)
    first = await run_in_threadpool(followed, store, wanted, limit)  # bad filter: 400
    follower = follow_list(ListFollower(store, wanted), limit, first, shutting_down())
    return StreamingResponse(follower, media_type="text/event-stream", headers=SSE_HEADERS)


def active_filter(chosen: RunFilter) -> RunFilter | None:
    """``chosen`` narrowed to the statuses that are not final (those it names, or all of
    them); None when it names only final ones."""
    open_statuses = frozenset(s for s in Status if not s.is_final)
    statuses = open_statuses & chosen.status if chosen.status else open_statuses
    return dataclasses.replace(chosen, status=statuses) if statuses else None


def followed(store: RunStore, chosen: RunFilter, limit: int) -> list[RunRecord]:
    """What a list watcher follows: the newest ``limit`` matching runs, then the active
    ones beyond them (one more listing: the filter's non-final statuses)."""
    runs = store.list_runs(chosen, limit=limit)
    active = active_filter(chosen)
    if active is None:
        return runs
    seen = {run.id for run in runs}
    more = store.list_runs(active, limit=ACTIVE_MAX)
    return runs + [run for run in more if run.id not in seen]


async def follow_list(follower: ListFollower, limit: int, runs: list[RunRecord],
                      stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    quiet_since = time.monotonic()
    while True:
        sent = await follower.changes(runs)
        for chunk in sent:
            yield chunk
        quiet_since = time.monotonic() if sent else quiet_since
        if time.monotonic() - quiet_since >= HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        if not await pause(LIST_POLL, stopping):
            return
        try:
            runs = await run_in_threadpool(followed, follower.store, follower.chosen, limit)
        except StoreError:  # busy or restarting: the same list again, and a look later
            continue


class ListFollower:
    """What one watcher of the run list has been sent: each followed run as last shown."""

    def __init__(self, store: RunStore, chosen: RunFilter) -> None:
        self.store, self.chosen = store, chosen
        self.shown: dict[str, dict[str, Any]] = {}

    async def changes(self, runs: list[RunRecord]) -> list[bytes]:
        """The events that take the watcher from what it was shown to ``runs`` (the runs
        now followed). A run no longer followed is looked up: ``removed`` if it is gone or
        no longer matches, else its new state if it changed (an old run that ended), and
        it is followed no more. One whose look-up fails stays for the next poll."""
        now = {run.id: (run, face(run)) for run in runs}
        left = [run_id for run_id in self.shown if run_id not in now]
        out: list[bytes] = []
        if left:
            found = await run_in_threadpool(look_up, self.store, self.chosen, left)
            for run_id, run in found.items():
                seen = self.shown.pop(run_id)
                if run is None:
                    out.append(sse("removed", {"id": run_id}))
                elif face(run) != seen:
                    out.append(sse("run", codec.run_to_dict(run)))
        for run_id, (run, seen) in now.items():
            if self.shown.get(run_id) != seen:
                out.append(sse("run", codec.run_to_dict(run)))
            self.shown[run_id] = seen
        return out


def look_up(store: RunStore, chosen: RunFilter, run_ids: list[str]
            ) -> dict[str, RunRecord | None]:
    """Each run of ``run_ids`` as stored now, None if deleted or no longer matching
    ``chosen``; a store error (busy) ends the look-up early with what was found."""
    found: dict[str, RunRecord | None] = {}
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
        except NotFoundError:
            found[run_id] = None
            continue
        except StoreError:
            break
        found[run_id] = run if chosen.matches(run) else None
    return found
