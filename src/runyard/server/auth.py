"""Who may call the server: bearer tokens, the ``runyard_token`` cookie, and ``/login``.

The token comes from ``Authorization: Bearer …`` or from the cookie ``/login`` sets (a link
that hands a browser its token once). Missing, unknown or revoked: 401; a read-only token on
anything but GET/HEAD: 403. The store is asked on every request (``runyard.core.tokens.find``),
never a cache, so a revocation holds at once in every worker process.

The check runs twice over, for two reasons. ``TokenGate``, an ASGI middleware, checks every
request under ``/api/`` (but the open routes) before anything else: before the router, before
a byte of the body is read, so an unknown client can neither probe routes nor make the server
read a body. ``require_token``, the dependency the app adds to every protected route, hands the
gate's answer to the route and declares the schemes in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from runyard.core import tokens
from runyard.errors import RunyardError, ValidationError
from runyard.model import TokenRecord
from runyard.server import mlflow
from runyard.server.errors import Forbidden, Unauthorized, error_answer, responses
from runyard.stores import RunStore

COOKIE = "runyard_token"
READS = frozenset({"GET", "HEAD"})
OPEN = frozenset({"/api/v1/healthz", "/api/v1/login", "/api/v1/openapi.json", "/api/v1/docs"})
STATE_KEY = "token"

bearer = HTTPBearer(auto_error=False, description="A token from `runyard server token create`.")
cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="Set by GET /api/v1/login.")


def carried(authorization: str | None, cookies: str | None) -> str:
    """The token a request carries (the header wins over the cookie), or 401."""
    if authorization:
        scheme, _, text = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not text.strip():
            raise Unauthorized("the Authorization header must be `Bearer <token>`")
        return text.strip()
    found = cookie_parser(cookies).get(COOKIE) if cookies else None
    if found:
        return found
    raise Unauthorized("this route needs a token: send `Authorization: Bearer <token>` "
                       "(make one with `runyard server token create --name NAME`)")


def authorize(store: RunStore, text: str, method: str) -> TokenRecord:
    """The live token of ``text``, if it may make a ``method`` request (else 401 or 403)."""
    found = tokens.find(store, text)
    if found is None:
        raise Unauthorized("unknown token; make one with `runyard server token create`")
    if found.revoked is not None:
        raise Unauthorized(f"token {found.name!r} was revoked; ask for a new one")
    if found.read_only and method not in READS:
        raise Forbidden(f"token {found.name!r} is read-only; {method} needs a token made "
                        "without --read-only")
    return found


class TokenGate:
    """Refuses every request under ``/api/`` without a usable token (see the docstring)."""

    def __init__(self, app: ASGIApp, store_of: Callable[[], RunStore]) -> None:
        self.app, self.store_of = app, store_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not guarded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        try:
            found = await anyio.to_thread.run_sync(self.check, scope)
        except RunyardError as exc:
            await refusal(scope.get("path", ""), exc)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[STATE_KEY], state["token_name"] = found, found.name
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> TokenRecord:
        headers = {k: v.decode("latin-1") for k, v in scope.get("headers", ())
                   if k in (b"authorization", b"cookie")}
        text = carried(headers.get(b"authorization"), headers.get(b"cookie"))
        path, method = scope.get("path", ""), scope.get("method", "GET")
        return authorize(self.store_of(), text, mlflow.method_needed(path, method))


def refusal(path: str, exc: RunyardError) -> ASGIApp:
    """The gate's answer: MLflow's error shape on MLflow's paths, else runyard's."""
    if mlflow.is_mlflow(path):
        from runyard.server.mlflow.errors import error_answer as mlflow_answer

        return mlflow_answer(exc)
    return error_answer(exc)


def guarded(path: str) -> bool:
    """Whether a path needs a token: the API, and MLflow's (its UI uses /ajax-api/)."""
    return path.startswith(("/api/", "/ajax-api/")) and path.rstrip("/") not in OPEN


def require_token(
    request: Request,
    given: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    from_cookie: Annotated[str | None, Depends(cookie)],
) -> TokenRecord:
    """The token the gate let through (or, for an app run without the gate, checked here)."""
    found = getattr(request.state, STATE_KEY, None)
    if isinstance(found, TokenRecord):
        return found
    text = carried(request.headers.get("authorization"), request.headers.get("cookie"))
    found = authorize(request.app.state.context.store, text, request.method)
    request.state.token, request.state.token_name = found, found.name
    return found


def safe_next(target: str) -> str:
    """``target`` if it is a path on this server (no scheme, no host), else a ValidationError."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target \
            or any(ord(c) < 33 or ord(c) == 127 for c in target):
        raise ValidationError(f"next must be a path on this server, like /runs, not {target!r}")
    return target


login_router = APIRouter()


@login_router.get(
    "/login",
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "The cookie is set; on to `next`."},
               **responses(400, 401, 422, 503)},
    summary="Hand a browser its token once: sets the runyard_token cookie",
)
def login(request: Request, token: Annotated[str, Query(max_length=512)],
          next: Annotated[str, Query(max_length=2048)] = "/") -> RedirectResponse:
    target = safe_next(next)
    found = authorize(request.app.state.context.store, token, "GET")
    request.state.token_name = found.name
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https")
    return answer
