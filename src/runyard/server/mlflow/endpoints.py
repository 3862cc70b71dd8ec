"""How an MLflow endpoint is served: a plain function of the store and the request's fields.

Each endpoint of this package is ``work(store, fields) -> dict``: ``fields`` is the JSON body
of a POST or the query string of a GET, and the dict is the answer. ``endpoint`` wraps it for
FastAPI: the body is read on the event loop, the work (store calls) runs in a worker thread,
the answer is written by orjson, and any failure is MLflow's error answer (``MlflowRoute``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from runyard.server.answers import json_answer
from runyard.server.mlflow.errors import MlflowRoute
from runyard.server.mlflow.wire import body_of, query_of
from runyard.stores import RunStore

Work = Callable[[RunStore, dict[str, Any]], dict[str, Any]]


def endpoint(work: Work, method: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        fields = query_of(request) if method == "GET" else await body_of(request)
        store = request.app.state.context.store
        return json_answer(await run_in_threadpool(work, store, fields))

    serve.__name__ = f"mlflow_{work.__name__}"
    return serve


def router_of(table: Sequence[tuple[str, str, Work]]) -> APIRouter:
    """A router with one route per ``(method, path, work)``; a GET endpoint answers POST too
    when MLflow's own server does (its search and get routes take both)."""
    router = APIRouter(route_class=MlflowRoute)
    for method, path, work in table:
        router.add_api_route(f"/{path}", endpoint(work, method), methods=[method],
                             include_in_schema=False)
    return router
