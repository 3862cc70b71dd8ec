"""Every failure over HTTP as one status and one body: ``{"detail": "<one line>", "type": …}``.

``type`` names the ``runyard.errors`` class, so the http store raises the same class a local
store would (``RunNotFound`` stays ``RunNotFound``). The status follows the class:

    ValidationError, ConfigError       400   (FastAPI's request validation: 422, same shape)
    Unauthorized / Forbidden           401 / 403  (``runyard.server.auth``)
    NotFoundError                      404
    ConflictError                      409
    body too large                     413
    IntegrityError                     422
    StoreError                         503   (retryable: the client retries it)

Any other ``RunyardError`` is the client's to fix (400); anything else is a bug (500, logged
with its traceback, no detail of it sent). ``responses(…)`` declares these answers in the
OpenAPI schema; every route uses it (the app adds the ones every route can give).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response

from runyard import errors
from runyard.server.answers import json_answer

log = logging.getLogger("runyard.server")


class ErrorBody(BaseModel):
    """What every error answer holds."""

    detail: str
    type: str


class Unauthorized(errors.RunyardError):
    """No usable token: missing, unknown or revoked (401)."""


class Forbidden(errors.RunyardError):
    """The token may not do this (a read-only token and a write): 403."""


class BodyTooLarge(errors.ValidationError):
    """The request body is over the server's limit: 413."""


# (class, status), most specific first: the first that matches wins
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (BodyTooLarge, 413),
    (Unauthorized, 401),
    (Forbidden, 403),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.IntegrityError, 422),
    (errors.StoreError, 503),
    (errors.MissingDependencyError, 503),
    (errors.RunyardError, 400),
)

WIRE_TYPE: dict[type, str] = {BodyTooLarge: "ValidationError"}  # (the client knows ValidationError)

DESCRIPTIONS = {
    400: "The request is malformed (ValidationError, ConfigError).",
    401: "No valid token: missing, unknown or revoked (Unauthorized).",
    403: "The token is read-only and this request writes (Forbidden).",
    404: "No such run, step or other record (a NotFoundError).",
    409: "The request conflicts with the record's state (a ConflictError).",
    413: "The request body is over the server's limit.",
    422: "The request does not match its schema, or stored data fails its check.",
    503: "The store failed; retry later (StoreError).",
}


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def answer(status: int, detail: str, type_name: str,
           headers: dict[str, str] | None = None) -> Response:
    return json_answer({"detail": one_line(detail), "type": type_name}, status, headers)


def error_answer(exc: errors.RunyardError) -> Response:
    """The answer for ``exc``: its status, its one line, its class's name."""
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    name = WIRE_TYPE.get(type(exc)) or type(exc).__name__
    return answer(status, str(exc) or name, name, headers)


Responses = dict[int | str, dict[str, Any]]


def responses(*codes: int) -> Responses:
    """OpenAPI declarations of these error answers, for a route's ``responses=``."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def answers(model: type[BaseModel], description: str, status: int = 200,
            *errors_too: int) -> Responses:
    """An answer's declaration (``model`` at ``status``) and error answers: for routes that
    build their answer themselves (``json_answer``) and still publish its schema."""
    return {status: {"model": model, "description": description}, **responses(*errors_too)}


# What any route can answer: bad input, no token, a read-only token, a big body, a down store.
COMMON = responses(400, 401, 403, 404, 413, 422, 503)


def validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of problems as one line: where and what, the first few."""
    parts = []
    for problem in exc.errors()[:3]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


async def _runyard(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.RunyardError)
    return error_answer(exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return answer(422, f"invalid request: {validation_detail(exc)}", "ValidationError")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, errors.RunyardError):  # (FastAPI wraps a failed body read)
        return error_answer(exc.__cause__)
    name = "NotFoundError" if exc.status_code == 404 else "ValidationError"
    if exc.status_code == 404:
        detail = f"no route {request.url.path}; see /api/v1/openapi.json"
    else:
        detail = str(exc.detail)
    return answer(exc.status_code, detail, name, dict(exc.headers or {}))


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return answer(500, "internal server error (a bug in runyard; see the server's log)",
                  "RunyardError")


def install(app: FastAPI) -> None:
    """Make every error of ``app`` answer in the one shape."""
    app.add_exception_handler(errors.RunyardError, _runyard)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)
