"""Codespecs and buffers over HTTP: the registry part of the store, and buffer data streamed.

The record routes are one registry call each, so the http store's registry behaves as a local
one (versions numbered atomically by the store, one writer per buffer). ``PUT
/buffers/{id}/data`` feeds its body to a ``runyard.commands.buffers.BufferWriter`` (read on the
event loop, written from worker threads a megabyte at a time: ``runyard.server.bodies``): the
server claims the buffer, stores the body as chunk blobs, and marks it complete at the end, or
incomplete if the client goes away midway. ``GET /buffers/{id}/data`` streams the chunks in
order; with ``follow=1`` it waits for chunks of a buffer still being written (polling the
store as ``runyard buffer read`` does, one ``Follower`` step at a time, waiting on the event
loop) and ends when the buffer is finished; a followed buffer that ends incomplete cuts the
answer short, so a client never takes a broken stream for a whole one. Neither holds a thread
while it waits for the network or the writer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from runyard.blobs import BlobStore
from runyard.commands import buffers as streams
from runyard.commands.follow import writer_gone
from runyard.commands.registry import (
    CREATED,
    FINAL_STATES,
    INCOMPLETE,
    Buffer,
    Chunk,
    Registry,
    parse_tags,
)
from runyard.core.context import StoreContext
from runyard.errors import BufferNotFound, CodespecNotFound, ConflictError, RunyardError
from runyard.model import new_id
from runyard.model.codec import owner_from_dict
from runyard.model.registry import CodespecRecord, buffer_to_doc
from runyard.server.bodies import ClientGone, drain, feed
from runyard.server.errors import responses
from runyard.server.routes import context_of, json_answer, no_content
from runyard.server.schemas import OwnerDoc, Small, Time

router = APIRouter(tags=["registry"])

Name = Annotated[str, Field(min_length=1, max_length=128)]
BufferId = Annotated[str, Field(min_length=1, max_length=128)]
Tags = dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=255)]]
READ_PIECE = 1 << 20  # bytes of a chunk's blob sent at a time


# -- codespecs --------------------------------------------------------------------------------
class CodespecDoc(BaseModel):
    name: Name
    version: Small
    created: Time
    digest: Annotated[str, Field(max_length=200)]
    spec: dict[str, Any]


class CodespecIn(BaseModel):
    name: Name
    digest: Annotated[str, Field(min_length=1, max_length=200)]
    spec: dict[str, Any]
    created: Time | None = None
    number: Annotated[int, Field(ge=1, lt=2**31)] | None = None


class CodespecAdded(BaseModel):
    codespec: CodespecDoc
    added: bool


class CodespecList(BaseModel):
    codespecs: list[CodespecDoc]


def codespec_doc(record: CodespecRecord) -> dict[str, Any]:
    return asdict(record)


@router.post("/codespecs", response_model=CodespecAdded, responses=responses(400, 409, 503),
             summary="Add a codespec version (none if the latest has this digest)")
def add_codespec(body: CodespecIn, request: Request) -> Response:
    created = time.time() if body.created is None else body.created
    record, added = context_of(request).store.add_codespec(
        body.name, body.digest, body.spec, created, body.number)
    return json_answer({"codespec": codespec_doc(record), "added": added})


@router.get("/codespecs", response_model=CodespecList, responses=responses(400, 503),
            summary="The latest version of every codespec, or every version of `name`")
def list_codespecs(request: Request,
                   name: Annotated[str | None, Query(max_length=128)] = None) -> Response:
    found = context_of(request).store.list_codespecs(name)
    return json_answer({"codespecs": [codespec_doc(r) for r in found]})


@router.get("/codespecs/{name}", response_model=CodespecDoc, responses=responses(400, 404, 503),
            summary="A codespec: its latest version, or `version`")
def get_codespec(name: str, request: Request,
                 version: Annotated[int | None, Query(ge=1, lt=2**31)] = None) -> Response:
    ref = name if version is None else f"{name}/versions/{version}"
    return json_answer(codespec_doc(context_of(request).registry.codespec(name, version, ref)))


# -- buffer records ---------------------------------------------------------------------------
class BufferDoc(BaseModel):
    id: BufferId
    created: Time
    tags: Tags = {}
    state: Literal["created", "writing", "complete", "incomplete"] = "created"
    size: Annotated[int, Field(ge=0, le=2**62)] = 0
    parts: Annotated[int, Field(ge=1, lt=2**31)] = 1
    run_id: Annotated[str, Field(max_length=128)] | None = None
    owner: OwnerDoc | None = None
    reason: Annotated[str, Field(max_length=10_000)] | None = None


class BufferIn(BufferDoc):
    """A buffer to create: the client may leave its id and time to the server."""

    id: BufferId | None = None  # type: ignore[assignment]
    created: Time | None = None  # type: ignore[assignment]

    def record(self) -> Buffer:
        owner = None if self.owner is None else owner_from_dict(self.owner.model_dump())
        return Buffer(id=self.id or new_id(), created=self.created or time.time(),
                      tags=dict(self.tags), state=self.state, size=self.size, parts=self.parts,
                      run_id=self.run_id, owner=owner, reason=self.reason)


class BufferList(BaseModel):
    buffers: list[BufferDoc]


class Claim(BaseModel):
    owner: OwnerDoc | None = None
    run_id: Annotated[str, Field(max_length=128)] | None = None
    parts: Annotated[int, Field(ge=1, lt=2**31)] = 1


class OwnerChange(BaseModel):
    owner: OwnerDoc


class ChunkDoc(BaseModel):
    part: Small
    seq: Small
    digest: Annotated[str, Field(max_length=80)] | None
    size: Annotated[int, Field(ge=0, le=2**62)]


class ChunkList(BaseModel):
    chunks: list[ChunkDoc]


class Finish(BaseModel):
    complete: bool
    reason: Annotated[str, Field(max_length=10_000)] | None = None


class Finished(BaseModel):
    finished: bool


BUFFER = {"model": BufferDoc, "description": "The buffer."}


def registry_of(request: Request) -> Registry:
    return context_of(request).registry


@router.post("/buffers", status_code=201, responses={201: BUFFER, **responses(400, 409, 503)},
             summary="Create a buffer")
def create_buffer(body: BufferIn, request: Request) -> Response:
    made = context_of(request).store.create_buffer(body.record())
    return json_answer(buffer_to_doc(made), 201)


@router.get("/buffers", response_model=BufferList, responses=responses(400, 503),
            summary="Buffers, newest first; `tag=k=v` (repeat: all of them)")
def list_buffers(request: Request,
                 tag: Annotated[list[Annotated[str, Query(max_length=255)]],
                                Query(max_length=32)] = [],  # noqa: B006
                 limit: Annotated[int | None, Query(ge=0, lt=2**31)] = None) -> Response:
    found = registry_of(request).buffers(parse_tags(tag) or None, limit)
    return json_answer({"buffers": [buffer_to_doc(b) for b in found]})


@router.get("/buffers/{buffer_id}", responses={200: BUFFER, **responses(404, 503)},
            summary="A buffer")
def get_buffer(buffer_id: str, request: Request) -> Response:
    return json_answer(buffer_to_doc(registry_of(request).buffer(buffer_id)))


@router.post("/buffers/{buffer_id}/claim", responses={200: BUFFER, **responses(404, 409, 503)},
             summary="Make one writer (an owner, or a run) the writer of a fresh buffer")
def claim_buffer(buffer_id: str, body: Claim, request: Request) -> Response:
    owner = None if body.owner is None else owner_from_dict(body.owner.model_dump())
    claimed = registry_of(request).claim(buffer_id, owner, body.run_id, body.parts)
    return json_answer(buffer_to_doc(claimed))


@router.put("/buffers/{buffer_id}/owner", status_code=204, response_class=Response,
            responses=responses(404, 409, 503), summary="Record the writer of a buffer")
def set_owner(buffer_id: str, body: OwnerChange, request: Request) -> Response:
    registry_of(request).set_owner(buffer_id, owner_from_dict(body.owner.model_dump()))
    return no_content()


@router.post("/buffers/{buffer_id}/chunks", status_code=204, response_class=Response,
             responses=responses(400, 404, 409, 503), summary="Record a chunk of a buffer")
def add_chunk(buffer_id: str, body: ChunkDoc, request: Request) -> Response:
    chunk = Chunk(body.part, body.seq, body.digest, body.size)
    registry_of(request).add_chunk(buffer_id, chunk)
    return no_content()


@router.get("/buffers/{buffer_id}/chunks", response_model=ChunkList,
            responses=responses(404, 503), summary="A buffer's chunks from (part, seq) on")
def list_chunks(buffer_id: str, request: Request,
                part: Annotated[int, Query(ge=0, lt=2**31)] = 0,
                seq: Annotated[int, Query(ge=0, lt=2**31)] = 0) -> Response:
    found = registry_of(request).chunks_after(buffer_id, part, seq)
    return json_answer({"chunks": [asdict(c) for c in found]})


@router.post("/buffers/{buffer_id}/finish", response_model=Finished,
             responses=responses(404, 503), summary="End the writing of a buffer")
def finish_buffer(buffer_id: str, body: Finish, request: Request) -> Response:
    return json_answer({"finished": registry_of(request).finish(buffer_id, body.complete,
                                                                body.reason)})


# -- buffer data ------------------------------------------------------------------------------
_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
_BYTES = {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                               "format": "binary"}}},
          "description": "The buffer's bytes, streamed."}


@router.put("/buffers/{buffer_id}/data", status_code=201, openapi_extra=_BINARY_BODY,
            responses={201: BUFFER, **responses(400, 404, 409, 503)},
            summary="Write a fresh buffer from the body (streamed; buffers are written once)")
async def write_data(buffer_id: str, request: Request) -> Response:
    from runyard.processes.owners import this_owner

    ctx, body = context_of(request), request.stream()
    try:
        writer = await anyio.to_thread.run_sync(_writer, ctx, buffer_id, this_owner())
    except RunyardError:
        await drain(body)  # (the answer is read once the client has sent its body)
        raise
    try:
        await feed(body, writer.write)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.fail, exc)
        if isinstance(exc, ClientGone):
            return Response(status_code=400)  # (nobody is there to read it)
        raise
    done = await anyio.to_thread.run_sync(writer.close)
    return json_answer(buffer_to_doc(done), 201)


def _writer(ctx: StoreContext, buffer_id: str, owner: Any) -> streams.BufferWriter:
    ctx.registry.buffer(buffer_id)  # (BufferNotFound before anything is claimed)
    return streams.BufferWriter(ctx.registry, ctx.blobs, buffer_id, owner)


@router.get("/buffers/{buffer_id}/data", response_class=StreamingResponse,
            responses={200: _BYTES, **responses(404, 409, 503)},
            summary="Read a buffer (streamed); follow=1 waits for one still being written")
def read_data(buffer_id: str, request: Request, follow: bool = False,
              incomplete: bool = False) -> StreamingResponse:
    ctx = context_of(request)
    buffer = ctx.registry.buffer(buffer_id)
    _check_readable(buffer, follow, incomplete)
    return StreamingResponse(_relay(ctx, buffer_id, incomplete),
                             media_type="application/octet-stream",
                             headers={"x-content-type-options": "nosniff"})


def _check_readable(buffer: Buffer, follow: bool, incomplete: bool) -> None:
    if buffer.state == CREATED and buffer.run_id is None:
        raise ConflictError(f"buffer {buffer.id} has no data yet; write it with PUT "
                            f"/api/v1/buffers/{buffer.id}/data")
    if buffer.state not in FINAL_STATES and not follow:
        raise ConflictError(f"buffer {buffer.id} is still being written; add follow=1 to "
                            "read it as it is written")
    if buffer.state == INCOMPLETE and not incomplete:
        raise ConflictError(_incomplete(buffer))


def _incomplete(buffer: Buffer) -> str:
    return (f"buffer {buffer.id} is incomplete ({buffer.reason}); add incomplete=1 to read "
            "what it holds")


async def _relay(ctx: StoreContext, buffer_id: str, incomplete: bool) -> AsyncIterator[bytes]:
    """The buffer's bytes, chunk after chunk as they are stored (``streams.Follower``: its
    steps run in worker threads, its waits on the event loop, so a reader waiting for a slow
    writer holds no thread). A buffer that ends incomplete raises, cutting the answer short."""
    reader = streams.Follower(ctx.registry, buffer_id, writer_gone(ctx.store))
    while True:
        chunks, wait = await anyio.to_thread.run_sync(reader.step)
        for chunk in chunks:
            async for piece in _blob_pieces(ctx.blobs, chunk):
                yield piece
        if wait is None:
            break
        if wait:
            await anyio.sleep(wait)
    final = await anyio.to_thread.run_sync(ctx.registry.buffer, buffer_id)
    if final.state == INCOMPLETE and not incomplete:
        raise ConflictError(_incomplete(final))


async def _blob_pieces(blobs: BlobStore, chunk: Chunk) -> AsyncIterator[bytes]:
    assert chunk.digest is not None
    source = await anyio.to_thread.run_sync(blobs.open, chunk.digest)
    try:
        while data := await anyio.to_thread.run_sync(source.read, READ_PIECE):
            yield data
    finally:
        source.close()


# -- ids with a slash -------------------------------------------------------------------------
# A client sends an id as one path segment, a slash in it escaped (``..%2Fetc``); the server
# matches the decoded path, where that id spans two segments and no route above matches. These
# last routes answer what a store answers for such an id: no such buffer, no such codespec.
@router.api_route("/buffers/{rest:path}", methods=["GET", "POST", "PUT"],
                  include_in_schema=False)
def buffer_with_a_slash(rest: str) -> None:
    raise BufferNotFound(rest[:128])


@router.get("/codespecs/{rest:path}", include_in_schema=False)
def codespec_with_a_slash(rest: str) -> None:
    raise CodespecNotFound(rest[:128])
