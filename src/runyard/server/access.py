"""Structured access logs: one JSON line per request, on the ``runyard.server.access`` logger.

Each line holds the method, the path (with its query, except for ``/login``, whose query holds
a token), the status, the milliseconds taken, the bytes sent and the name of the token used
(never the token). A plain ASGI middleware: it wraps ``send`` and adds no task or copy, so a
streamed answer (a blob, server-sent events) streams as before.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("runyard.server.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, int] = {"status": 500, "bytes": 0}

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            log.info(line(scope, seen["status"], started, seen["bytes"]))


def line(scope: Scope, status: int, started: float, sent: int) -> str:
    """The JSON line for one request."""
    entry: dict[str, Any] = {
        "time": round(time.time(), 3),
        "method": scope.get("method"),
        "path": shown_path(scope),
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "bytes": sent,
        "token": scope.get("state", {}).get("token_name"),
    }
    client = scope.get("client")
    if client:
        entry["client"] = client[0]
    return json.dumps(entry, ensure_ascii=False)


def shown_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    query = scope.get("query_string", b"")
    if not query or path.rstrip("/").endswith("/login"):
        return path
    return f"{path}?{query.decode('latin-1')}"
