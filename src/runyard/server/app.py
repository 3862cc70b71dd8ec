"""The app factory: one FastAPI app over one store context.

``create_app(context)`` builds the whole server: the routers of ``runyard.server.routes``
under ``/api/v1`` (each module found there exposes ``router``; every one of its routes gets
the token check and the common error answers), ``/api/v1/healthz`` and ``/api/v1/login``
(open), the error handlers and the middleware, outermost first: the access log, CORS (only
when asked, for one origin), the token gate, the body limit. ``from_env`` is the factory
uvicorn's worker processes call: each opens the store named by ``RUNYARD_SERVER_STORE``
itself (no connection crosses a ``fork``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from runyard import __version__
from runyard.core.context import StoreContext, open_context
from runyard.errors import ConfigError, RunyardError
from runyard.server import errors
from runyard.server.access import AccessLog
from runyard.server.answers import OrjsonAnswer, json_answer
from runyard.server.auth import TokenGate, login, login_router, require_token
from runyard.server.limits import DEFAULT_MAX_BODY, BodyLimit
from runyard.stores import redact_url

API = "/api/v1"
STORE_ENV = "RUNYARD_SERVER_STORE"
CORS_ENV = "RUNYARD_SERVER_CORS_ORIGIN"
MAX_BODY_ENV = "RUNYARD_SERVER_MAX_BODY"
ACCESS_LOG_ENV = "RUNYARD_SERVER_ACCESS_LOG"


def create_app(context: StoreContext, *, access_log: bool = True,
               max_body: int = DEFAULT_MAX_BODY, cors_origin: str | None = None,
               close_store: bool = False) -> FastAPI:
    """The server over ``context``; ``close_store``: close its store when the app stops."""
    app = FastAPI(
        title="runyard", version=__version__, openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs", redoc_url=None, default_response_class=OrjsonAnswer,
        lifespan=_lifespan(context, close_store),
    )
    app.state.context = context
    errors.install(app)
    app.include_router(open_routes(), prefix=API)
    # at the root too, outside the schema: load balancers probe /healthz, and a link that
    # hands a browser its token reads best as /login?token=…
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", login, methods=["GET"], include_in_schema=False)
    app.include_router(protected_routes(), prefix=API, responses=errors.COMMON,
                       dependencies=[Depends(require_token)])
    from runyard.server import mlflow  # (the MLflow-compatible API, behind the same gate)

    mlflow.mount(app)
    from runyard.server import ui  # (the dashboard at /, behind the token cookie)

    ui.mount(app)
    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(TokenGate, store_of=lambda: context.store)  # (before any body is read)
    if cors_origin:  # (outside the gate: a browser's preflight carries no token)
        _allow_origin(app, cors_origin)
    if access_log:
        app.add_middleware(AccessLog)
    return app


def open_routes() -> APIRouter:
    router = APIRouter()
    router.include_router(login_router)
    router.add_api_route("/healthz", healthz, methods=["GET"], summary="Whether the server "
                         "and its store answer (no token needed)",
                         responses=errors.responses(503))
    return router


def protected_routes() -> APIRouter:
    """Every part of the API, in the order its routes are matched."""
    from runyard.server.routes import (
        blobs,
        launch,
        registry,
        runs,
        steps,
        streams,
        versions,
        watch,
    )

    router = APIRouter()
    for part in (runs, steps, streams, watch, blobs, registry, launch, versions):
        router.include_router(part.router)
    return router


def healthz(request: Request) -> Response:
    context: StoreContext = request.app.state.context
    shown = redact_url(context.url)
    try:
        context.store.list_runs(limit=1)
    except RunyardError as exc:
        return errors.answer(503, f"the store {shown} does not answer: {exc}", "StoreError")
    return json_answer({"status": "ok", "store": shown})


def _lifespan(context: StoreContext, close_store: bool
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_store:
            context.close()

    return lifespan


def _allow_origin(app: FastAPI, origin: str) -> None:
    from starlette.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware, allow_origins=[origin], allow_credentials=True,
        allow_methods=["*"], allow_headers=["Authorization", "Content-Type",
                                            "Idempotency-Key", "Content-Range", "Range"],
    )


def from_env() -> FastAPI:
    """The app as a uvicorn worker builds it: its settings from the environment that
    ``runyard server`` set (``runyard.server.serve``)."""
    url = os.environ.get(STORE_ENV)
    if not url:
        raise ConfigError(f"{STORE_ENV} is not set: start the server with `runyard server`")
    max_body = int(os.environ.get(MAX_BODY_ENV) or DEFAULT_MAX_BODY)
    return create_app(open_context(url), access_log=os.environ.get(ACCESS_LOG_ENV) != "0",
                      max_body=max_body, cors_origin=os.environ.get(CORS_ENV) or None,
                      close_store=True)
