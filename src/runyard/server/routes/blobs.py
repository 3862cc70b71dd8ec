"""Blobs and run artifacts over HTTP: streamed, resumable, verified uploads; ranged downloads.

``PUT /blobs/{digest}`` reads its body on the event loop and writes it into the context's blob
store from worker threads (``runyard.server.bodies.feed``), a megabyte at a time: a whole body
through ``blobs.uploads.Incoming``, a piece with ``Content-Range`` through ``Resumed`` (a
partial file named by the digest, locked while one writer appends). Nothing is kept unless it
hashes to the digest in the path, and no body is ever whole in memory. Downloads are
``FileResponse``s of the blob's file: ``Range`` (206) and ``ETag: "<digest>"``. An artifact is
found by comparing names with the run's catalog, never by joining a name to a path; its
content is the blob its catalog entry names.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from runyard.blobs import BlobRef, BlobStore, check_digest
from runyard.blobs.local import touch
from runyard.blobs.uploads import Incoming, Piece, Resumed, UploadConflict, received
from runyard.errors import BlobNotFound, NotFoundError, RunyardError, ValidationError
from runyard.model import Artifact
from runyard.model.codec import artifact_to_dict
from runyard.model.records import Stage
from runyard.model.validate import artifact_name
from runyard.server.bodies import ClientGone, drain, feed
from runyard.server.errors import answer, one_line, responses
from runyard.server.routes import context_of, json_answer, no_content
from runyard.server.routes import run_id as check_run

router = APIRouter(tags=["blobs"])

MAX_DIGESTS = 10_000
_RANGE = re.compile(r"bytes (\d{1,19})-(\d{1,19})/(\d{1,19}|\*)")
_RANGE_PART = re.compile(r"(\d{0,19})-(\d{0,19})")
_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
_BYTES = {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                               "format": "binary"}}}}


def blob_store(request: Request) -> BlobStore:
    return context_of(request).blobs


# -- uploads ----------------------------------------------------------------------------------
class Stored(BaseModel):
    digest: str
    size: int


class Received(BaseModel):
    received: int


@router.put(
    "/blobs/{digest}",
    status_code=201,
    response_model=Stored,
    openapi_extra=_BINARY_BODY,
    responses={202: {"model": Received, "description": "A piece is kept; send the next."},
               409: {"model": Received, "description": "The piece does not start where the "
                     "upload stands (or another writer holds it): resume from `received`."},
               **responses(400, 422, 503)},
    summary="Upload a blob (streamed; resumable with Content-Range; verified)",
)
async def put_blob(digest: str, request: Request) -> Response:
    body = request.stream()
    try:
        return await _put(request, digest, body)
    except ClientGone:
        return Response(status_code=400)  # (nobody is there to read it)
    except RunyardError:
        await drain(body)  # (the answer is read once the client has sent its body)
        raise


async def _put(request: Request, digest: str, body: AsyncIterator[bytes]) -> Response:
    blobs, digest = blob_store(request), check_digest(digest)
    given = request.headers.get("content-range")
    piece = None if given is None else parse_content_range(given)
    try:
        if await anyio.to_thread.run_sync(blobs.exists, digest):
            await drain(body)
            ref = await anyio.to_thread.run_sync(_renewed, blobs, digest)
        elif piece is None:
            ref = await _put_whole(blobs, digest, body)
        else:
            got = await _put_piece(blobs, digest, piece, body)
            if isinstance(got, int):
                return json_answer({"received": got}, 202)
            ref = got
    except UploadConflict as exc:
        await drain(body)
        return json_answer({"detail": one_line(str(exc)), "type": "ConflictError",
                            "received": exc.received}, 409)
    return json_answer({"digest": ref.digest, "size": ref.size}, 201)


def parse_content_range(text: str) -> Piece:
    """``bytes a-b/total`` (``total`` may be ``*`` until the last piece) as a ``Piece``."""
    found = _RANGE.fullmatch(text.strip())
    if found is None:
        raise ValidationError(f"invalid Content-Range {text[:80]!r}: use bytes START-END/TOTAL")
    start, end = int(found[1]), int(found[2])
    total = None if found[3] == "*" else int(found[3])
    if end < start or (total is not None and end >= total):
        raise ValidationError(f"invalid Content-Range {text[:80]!r}: START <= END < TOTAL")
    return Piece(start, end, total)


def _renewed(blobs: BlobStore, digest: str) -> BlobRef:
    """A blob put again: its mtime renewed, as ``BlobStore`` puts do, so a garbage collection
    beside us keeps it until the entry naming it is written (``blobs.local.touch``)."""
    touch(blobs.path(digest))
    return BlobRef(digest, blobs.size(digest))


async def _put_whole(blobs: BlobStore, digest: str, body: AsyncIterator[bytes]) -> BlobRef:
    incoming = await anyio.to_thread.run_sync(Incoming, blobs, digest)
    try:
        await feed(body, incoming.write)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(incoming.discard)
        raise
    return await anyio.to_thread.run_sync(incoming.finish)


async def _put_piece(blobs: BlobStore, digest: str, piece: Piece, body: AsyncIterator[bytes]
                     ) -> BlobRef | int:
    """Append the piece (written as it arrives, so ``received`` keeps up with it)."""
    writer = await anyio.to_thread.run_sync(Resumed, blobs, digest, piece)
    try:
        await feed(body, writer.write, gather=1)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):  # a client that went away: what came is kept
            await anyio.to_thread.run_sync(writer.abandon, isinstance(exc, ClientGone))
        raise
    return await anyio.to_thread.run_sync(writer.end)


@router.get("/blobs/{digest}/upload", response_model=Received, responses=responses(400, 503),
            summary="How much of a resumable upload the server holds")
def upload_state(digest: str, request: Request) -> dict[str, int]:
    return {"received": received(blob_store(request), digest)}


class Digests(BaseModel):
    digests: list[Annotated[str, Field(max_length=80)]] = Field(max_length=MAX_DIGESTS)


class Missing(BaseModel):
    missing: list[str]


@router.post("/blobs/missing", response_model=Missing, responses=responses(400, 503),
             summary="Which of these blobs the server does not have")
def missing_blobs(body: Digests, request: Request) -> dict[str, list[str]]:
    blobs = blob_store(request)
    wanted = [check_digest(d) for d in body.digests]
    missing = [d for d in wanted if not blobs.exists(d)]
    for digest in set(wanted) - set(missing):  # (the client names them next: see _renewed)
        touch(blobs.path(digest))
    return {"missing": missing}


# -- downloads --------------------------------------------------------------------------------
@router.head("/blobs/{digest}", responses={200: {"description": "Stored; Content-Length is "
                                                 "its size."}, **responses(400, 404, 503)},
             summary="Whether a blob is stored, and its size")
def head_blob(digest: str, request: Request) -> Response:
    digest = check_digest(digest)
    size = blob_store(request).size(digest)
    return Response(status_code=200, headers={"content-length": str(size),
                                              "etag": f'"{digest}"'})


@router.get("/blobs/{digest}", response_class=Response,
            responses={200: _BYTES, 206: _BYTES, 304: {"description": "Not modified."},
                       416: {"description": "The Range is outside the content."},
                       **responses(400, 404, 503)},
            summary="Download a blob (streamed; Range gives 206)")
def get_blob(digest: str, request: Request) -> Response:
    return blob_response(request, blob_store(request), check_digest(digest))


def blob_response(request: Request, blobs: BlobStore, digest: str, *,
                  filename: str | None = None, media_type: str | None = None) -> Response:
    """The blob's file, streamed (``Range`` honoured), tagged with its digest."""
    import os

    etag = f'"{digest}"'
    path = blobs.path(digest)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BlobNotFound(digest) from None
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"etag": etag})
    wanted = request.headers.get("range")
    if wanted is not None and not satisfiable(wanted, info.st_size):
        return answer(416, f"Range {wanted[:80]!r} is outside the {info.st_size} bytes of blob "
                      f"{digest}", "ValidationError", {"content-range": f"bytes */{info.st_size}"})
    headers = {"etag": etag, "cache-control": "private, max-age=31536000, immutable",
               "x-content-type-options": "nosniff"}
    if filename is not None:  # user content: never rendered as a page of this origin
        headers["content-security-policy"] = "sandbox"
    return FileResponse(path, stat_result=info, headers=headers, filename=filename,
                        media_type=media_type or "application/octet-stream",
                        content_disposition_type="attachment")


def satisfiable(header: str, size: int) -> bool:
    """Whether the ``Range`` header asks for bytes within ``size`` (``ValidationError`` if it
    is malformed), checked here so a bad one is answered in the one error shape."""
    unit, sep, ranges = header.partition("=")
    parts = [_RANGE_PART.fullmatch(p.strip()) for p in ranges.split(",")] if sep else [None]
    if unit.strip().lower() != "bytes" or len(parts) > 100 or not all(parts):
        raise ValidationError(f"invalid Range {header[:80]!r}: use bytes=START-END, "
                              "bytes=START- or bytes=-LENGTH")
    fits = False
    for part in parts:
        assert part is not None
        start, end = part[1], part[2]
        if (not start and not end) or (start and end and int(end) < int(start)):
            raise ValidationError(f"invalid Range {header[:80]!r}: START <= END")
        fits = fits or (int(start) < size if start else int(end) > 0 and size > 0)
    return fits


# -- artifacts --------------------------------------------------------------------------------
class ArtifactIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=4096)]
    hash: Annotated[str, Field(min_length=1, max_length=200)]
    size: Annotated[int, Field(ge=0, le=2**62)]
    stage: Literal["put", "get"] = "put"
    time: float | None = None
    step: str | None = None
    category: str | None = None

    def record(self, now: float) -> Artifact:
        return Artifact(self.name, self.hash, self.size, Stage(self.stage),
                        now if self.time is None else self.time, self.step, self.category)


class ArtifactsIn(BaseModel):
    """POST body, and GET answer, of a run's artifacts."""

    artifacts: list[ArtifactIn]


@router.post("/runs/{run_id}/artifacts", status_code=204, response_class=Response,
             responses=responses(400, 404, 503),
             summary="Add catalog entries to a run (names checked first: all or none)")
def add_artifacts(run_id: str, body: ArtifactsIn, request: Request) -> Response:
    now = time.time()
    context_of(request).store.add_artifacts(check_run(run_id),
                                            [a.record(now) for a in body.artifacts])
    return no_content()


@router.get("/runs/{run_id}/artifacts", responses={
    200: {"model": ArtifactsIn, "description": "The run's catalog."}, **responses(404, 503)},
            summary="A run's catalog: its artifacts")
def list_artifacts(run_id: str, request: Request) -> Response:
    store = context_of(request).store
    store.get_run(check_run(run_id))
    return json_answer({"artifacts": [artifact_to_dict(a) for a in store.list_artifacts(run_id)]})


@router.get("/runs/{run_id}/artifacts/content", response_class=Response,
            responses={200: _BYTES, 206: _BYTES, 304: {"description": "Not modified."},
                       416: {"description": "The Range is outside the content."},
                       **responses(400, 404, 503)},
            summary="Download an artifact's content (streamed; Range gives 206)")
def artifact_content(run_id: str, request: Request,
                     name: Annotated[str, Query(max_length=4096)],
                     stage: Literal["put", "get"] = "put") -> Response:
    artifact_name(name)  # traversal, absolute paths, NUL: 400 before anything is looked up
    ctx = context_of(request)
    ctx.store.get_run(check_run(run_id))
    found = next((a for a in ctx.store.list_artifacts(run_id)
                  if a.name == name and a.stage.value == stage), None)
    if found is None:
        raise NotFoundError(f"run {run_id} has no artifact {name!r} (stage {stage}); see "
                            f"GET /api/v1/runs/{run_id}/artifacts")
    if found.hash not in ctx.blobs:  # (also a catalog hash that is no digest: never a path)
        raise BlobNotFound(found.hash[:80])
    return blob_response(request, ctx.blobs, check_digest(found.hash),
                         filename=name.replace("\\", "/").rsplit("/", 1)[-1],
                         media_type=_guess_type(name))


def _guess_type(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"

