"""What the MLflow paths outside runyard's subset answer: MLflow's own ``ENDPOINT_NOT_FOUND``.

The client retries 408, 429 and 5xx for minutes, so an unsupported endpoint must never give
one: a 404 with MLflow's error body makes ``log_model`` or a registry call raise at once, and
the callers that probe (traces, ``server-info``) carry on.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from runyard.server.mlflow.errors import MlflowRoute, not_found

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def unsupported(request: Request) -> Response:
    return not_found(request.url.path)


def router_for(prefixes: tuple[str, ...]) -> APIRouter:
    router = APIRouter(route_class=MlflowRoute)
    for prefix in prefixes:
        for pattern in (prefix, prefix + "/{rest:path}"):
            router.add_api_route(pattern, unsupported, methods=METHODS,
                                 include_in_schema=False)
    return router
