"""Who may call the server: bearer tokens, the ``runyard_token`` cookie, and ``/login``.

Every route but ``/healthz`` and ``/login`` depends on ``require_token`` (the app factory adds
it to every router it includes). The token comes from ``Authorization: Bearer …`` or from the
cookie ``/login`` sets (a link that hands a browser its token once). Missing, unknown or
revoked: 401; a read-only token on anything but GET/HEAD: 403. The store is asked on every
request (``runyard.core.tokens.find``), never a cache, so a revocation holds at once in every
worker process.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from runyard.core import tokens
from runyard.errors import ValidationError
from runyard.model import TokenRecord
from runyard.server.errors import Forbidden, Unauthorized, responses

COOKIE = "runyard_token"
READS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(auto_error=False, description="A token from `runyard server token create`.")
cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="Set by GET /api/v1/login.")


def token_text(request: Request, given: HTTPAuthorizationCredentials | None,
               from_cookie: str | None) -> str:
    """The token the request carries (the header wins over the cookie), or 401."""
    if given is not None:
        return given.credentials
    if request.headers.get("authorization"):
        raise Unauthorized("the Authorization header must be `Bearer <token>`")
    if from_cookie:
        return from_cookie
    raise Unauthorized("this route needs a token: send `Authorization: Bearer <token>` "
                       "(make one with `runyard server token create --name NAME`)")


def check(request: Request, text: str) -> TokenRecord:
    """The live token of ``text``, allowed to make this request (401 or 403 otherwise)."""
    found = tokens.find(request.app.state.context.store, text)
    if found is None:
        raise Unauthorized("unknown token; make one with `runyard server token create`")
    if found.revoked is not None:
        raise Unauthorized(f"token {found.name!r} was revoked; ask for a new one")
    if found.read_only and request.method not in READS:
        raise Forbidden(f"token {found.name!r} is read-only; {request.method} needs a token "
                        "made without --read-only")
    return found


def require_token(
    request: Request,
    given: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    from_cookie: Annotated[str | None, Depends(cookie)],
) -> TokenRecord:
    """The dependency every protected route has; it names the token for the access log."""
    found = check(request, token_text(request, given, from_cookie))
    request.state.token_name = found.name
    return found


def safe_next(target: str) -> str:
    """``target`` if it is a path on this server (no scheme, no host), else a ValidationError."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target \
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
    found = check(request, token)
    request.state.token_name = found.name
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                      secure=request.url.scheme == "https")
    return answer
