"""Request body limits: a JSON body over ``max_body`` bytes is refused with 413.

Checked from ``Content-Length`` before anything is read, and counted while the body streams in
(a chunked upload has no length), so an oversize body never sits in memory. Streamed uploads
are exempt (``PUT /api/v1/blobs/{digest}``, ``PUT /api/v1/buffers/{id}/data``, MLflow's
``PUT /api/2.0/mlflow-artifacts/artifacts/…``): they are
written to disk as they arrive and have no size limit.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard.server.errors import BodyTooLarge, error_answer

DEFAULT_MAX_BODY = 64 * 1024 * 1024
STREAMED = re.compile(r"^/api/v1/(blobs/[^/]+|buffers/[^/]+/data)/?$"
                      r"|^/api/2\.0/mlflow-artifacts/artifacts/.")  # (MLflow's artifact PUTs)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method") == "PUT"
                                       and STREAMED.match(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await error_answer(self.too_large())(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise self.too_large()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:
            if started:
                raise
            await error_answer(exc)(scope, receive, send)

    def too_large(self) -> BodyTooLarge:
        return BodyTooLarge(f"the request body is over the server's limit of {self.max_body} "
                            "bytes; send it in smaller batches")


def streamed(scope: Scope) -> bool:
    """Whether the request is a streamed upload (a PUT of blob or buffer bytes)."""
    return scope.get("method") == "PUT" and STREAMED.match(scope.get("path", "")) is not None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
