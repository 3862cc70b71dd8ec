"""MLflow's error answers: ``{"error_code": …, "message": …}``, with statuses its client reads.

The real client turns such a body back into an ``MlflowException`` with that ``error_code``,
whatever the status; and it retries 408, 429, 500, 502, 503 and 504 for minutes. So a bad
request is always a 4xx here (MLflow's own server answers ``INVALID_STATE`` with 500; here it is
400), and only a store that failed (``StoreError``) is a 503, ``TEMPORARILY_UNAVAILABLE``,
which a retry may cure. ``MlflowRoute`` gives every route of this package these answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from runyard import errors
from runyard.server.answers import json_answer

log = logging.getLogger("runyard.server")

INVALID = "INVALID_PARAMETER_VALUE"
MISSING = "RESOURCE_DOES_NOT_EXIST"
EXISTS = "RESOURCE_ALREADY_EXISTS"
BAD_STATE = "INVALID_STATE"
NO_ENDPOINT = "ENDPOINT_NOT_FOUND"

STATUS = {INVALID: 400, MISSING: 404, EXISTS: 400, BAD_STATE: 400, NO_ENDPOINT: 404,
          "BAD_REQUEST": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
          "TEMPORARILY_UNAVAILABLE": 503, "INTERNAL_ERROR": 500}


class MlflowError(errors.ValidationError):
    """A request the MLflow API refuses, with MLflow's ``error_code`` (400 or 404)."""

    def __init__(self, message: str, code: str = INVALID) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> MlflowError:
    return MlflowError(message, INVALID)


def missing(message: str) -> MlflowError:
    return MlflowError(message, MISSING)


def code_of(exc: BaseException) -> str:
    """The MLflow error code for a runyard error."""
    if isinstance(exc, MlflowError):
        return exc.code
    from runyard.server.errors import Forbidden, Unauthorized

    table: tuple[tuple[type[BaseException], str], ...] = (
        (Unauthorized, "UNAUTHENTICATED"), (Forbidden, "PERMISSION_DENIED"),
        (errors.NotFoundError, MISSING), (errors.IllegalTransition, BAD_STATE),
        (errors.StoreReadOnly, "PERMISSION_DENIED"), (errors.StoreError,
                                                       "TEMPORARILY_UNAVAILABLE"),
        (errors.MissingDependencyError, "TEMPORARILY_UNAVAILABLE"),
    )
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return INVALID


def answer(code: str, message: str) -> Response:
    line = " ".join(str(message).split())[:1000]
    return json_answer({"error_code": code, "message": line}, STATUS.get(code, 400))


def error_answer(exc: BaseException) -> Response:
    """The MLflow answer for ``exc`` (a bug is a 500 logged with its traceback)."""
    if isinstance(exc, errors.RunyardError):
        return answer(code_of(exc), str(exc) or type(exc).__name__)
    log.error("internal error in the MLflow API", exc_info=exc)
    return answer("INTERNAL_ERROR", "internal server error (a bug in runyard; see the "
                  "server's log)")


def not_found(path: str) -> Response:
    """What an endpoint outside runyard's subset answers: MLflow's own 404, which the
    client reports (or, for traces and server-info, shrugs off) without retrying."""
    return answer(NO_ENDPOINT, f"runyard's MLflow-compatible API does not serve {path}; it "
                  "answers the tracking subset (experiments, runs, metrics, artifacts)")


class MlflowRoute(APIRoute):
    """A route whose every failure is an MLflow error answer (never the runyard shape)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # (each becomes its MLflow answer)
                cause = exc.__cause__ if isinstance(exc.__cause__, errors.RunyardError) else exc
                return error_answer(cause)

        return handle
