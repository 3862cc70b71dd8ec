"""Server-sent events: follow one run (status, metrics, events, log lines) or the run list.

Each stream polls the store (a few times a second) and keeps its own positions, so any worker
process can serve any watcher and nothing is shared between them. ``GET /runs/{id}/watch``
sends ``status`` (the run, when it changes), ``metrics``/``events``/``logs`` (new rows, by
``read_from`` position; each carries an ``id`` that a reconnecting client returns as
``Last-Event-ID`` to resume where it left off) and ``end`` once the run is terminal and every
row written before that is sent. ``GET /watch/runs`` sends ``run`` for each run that enters the
filtered list or changes and ``removed`` for each that leaves it. A comment line every 15 s
keeps proxies from closing a quiet stream.

A stream stops when its client goes (Starlette cancels it) and when the server shuts down:
uvicorn waits for open responses before it exits, so each stream watches uvicorn's
``should_exit`` (found through the SIGTERM handler uvicorn installs) and returns by itself.
"""

from __future__ import annotations

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
from runyard.model import codec
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
    """The newest ``limit`` runs that match the filters (those of ``GET /runs``), followed."""
    store = store_of(request)
    first = await run_in_threadpool(store.list_runs, wanted, limit=limit)  # bad filter: 400
    follower = follow_list(store, wanted, limit, first, shutting_down())
    return StreamingResponse(follower, media_type="text/event-stream", headers=SSE_HEADERS)


async def follow_list(store: RunStore, chosen: RunFilter, limit: int, runs: list[RunRecord],
                      stopping: Callable[[], bool]) -> AsyncIterator[bytes]:
    shown: dict[str, dict[str, Any]] = {}
    quiet_since = time.monotonic()
    while True:
        sent = list_changes(shown, runs)
        for chunk in sent:
            yield chunk
        quiet_since = time.monotonic() if sent else quiet_since
        if time.monotonic() - quiet_since >= HEARTBEAT:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        if not await pause(LIST_POLL, stopping):
            return
        try:
            runs = await run_in_threadpool(store.list_runs, chosen, limit=limit)
        except StoreError:  # busy or restarting: the same list again, and a look later
            continue


def list_changes(shown: dict[str, dict[str, Any]], runs: list[RunRecord]) -> list[bytes]:
    """The events that take a watcher from ``shown`` to ``runs`` (``shown`` is updated)."""
    now = {run.id: (run, face(run)) for run in runs}
    out = [sse("removed", {"id": run_id}) for run_id in shown if run_id not in now]
    for run_id, (run, seen) in now.items():
        if shown.get(run_id) != seen:
            out.append(sse("run", codec.run_to_dict(run)))
    shown.clear()
    shown.update({run_id: seen for run_id, (_, seen) in now.items()})
    return out
