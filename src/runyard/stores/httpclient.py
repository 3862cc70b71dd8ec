"""The HTTP client of the ``http(s)://`` store: one pooled connection set per store, retries.

A runyard server may be restarting or briefly overloaded, so every request is retried with
exponential backoff and full jitter on a connection error, a timeout and any 5xx answer, for
up to ``patience`` seconds; then ``Unreachable`` (a ``StoreError``) is raised, and the http
store's appends go to the spool instead (``runyard.stores.spool``). A 4xx answer is never
retried: its body ``{"detail", "type"}`` is turned back into the exact ``runyard.errors``
class the server raised (``RunNotFound``, ``NameTaken`` ...), so a caller over HTTP sees what
it would see on a local store. ``Reply.resent`` says whether an earlier try may have reached
the server, so a non-idempotent write can tell "done by my earlier try" from a real conflict.

httpx and orjson are imported here, and this module only when an http store is opened.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

# Not ``from runyard import errors``: the package root imports (for type checkers) every layer,
# this one too, and that cycle put runyard and runyard.engine in one mypy SCC (a false no-redef).
from runyard.errors import (
    ConfigError,
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    RunyardError,
    StoreError,
    ValidationError,
    error_class,
)
from runyard.stores.credentials import origin_of

__all__ = ["HttpClient", "Reply", "Unreachable", "error_from", "origin_of", "segment"]

API = "/api/v1"
PATIENCE_S = float(os.environ.get("RUNYARD_HTTP_PATIENCE", "30"))  # retrying, per request
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=120.0, pool=60.0)
LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=60.0)
RETRYABLE = (httpx.TransportError,)  # connect, read, write, protocol errors and timeouts

# Status codes whose answer has no body of ours: what the caller gets instead.
BY_STATUS: dict[int, type[RunyardError]] = {
    400: ValidationError, 404: NotFoundError, 409: ConflictError,
    413: ValidationError, 422: ValidationError,
}

Body = bytes | Callable[[], Iterable[bytes]]


class Unreachable(StoreError):
    """The server did not answer (or kept failing) for the client's whole patience."""


@dataclass(frozen=True)
class Reply:
    response: httpx.Response
    resent: bool  # an earlier try failed in a way that may have reached the server

    def json(self) -> Any:
        content = self.response.content
        return orjson.loads(content) if content else None


def segment(value: str) -> str:
    """``value`` as one path segment (a name with a slash cannot reach another route)."""
    return quote(str(value), safe="")


class HttpClient:
    """Requests to one server's ``/api/v1`` with a bearer ``token``; safe to share by threads
    (a forked child makes its own connections)."""

    def __init__(self, origin: str, token: str, *, patience: float = PATIENCE_S) -> None:
        self.origin, self.patience = origin, patience
        self._headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"HttpClient({self.origin!r})"

    @property
    def client(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = httpx.Client(base_url=self.origin + API, timeout=TIMEOUT,
                                                limits=LIMITS, headers=self._headers)
                    self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    # -- requests -------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *,
             params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
             headers: Mapping[str, str] | None = None, patience: float | None = None) -> Any:
        """The decoded JSON answer (None for an empty one); the server's error raised."""
        return self.send(method, path, body, params=params, headers=headers,
                         patience=patience).json()

    def send(self, method: str, path: str, body: Any = None, *,
             params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
             headers: Mapping[str, str] | None = None, content: Body | None = None,
             patience: float | None = None, ok: Callable[[int], bool] | None = None) -> Reply:
        """Send until answered (see the module docstring). ``body`` is sent as JSON;
        ``content`` as raw bytes, or made afresh per try by calling it. A status that is not
        2xx (nor ``ok``) raises its error."""
        extra = dict(headers or {})
        if body is not None:
            content = encode_json(body)
            extra["content-type"] = "application/json"
        query = _query(params)
        deadline = time.monotonic() + (self.patience if patience is None else patience)
        resent, tries = False, 0
        while True:
            payload = content() if callable(content) else content
            try:
                response = self.client.request(method, path, content=payload, params=query,
                                               headers=extra)
            except RETRYABLE as exc:
                resent = resent or _may_have_arrived(exc)
                failure: Exception = exc
            else:
                if response.status_code < 500:
                    if response.is_success or (ok is not None and ok(response.status_code)):
                        return Reply(response, resent)
                    error = error_from(response)
                    error.resent = resent  # type: ignore[attr-defined]
                    raise error
                resent, failure = True, error_from(response)
            tries += 1
            if not self._wait(tries, deadline):
                raise self.gave_up(method, path, failure)

    def _wait(self, tries: int, deadline: float) -> bool:
        """Sleep before try ``tries + 1`` (full jitter); False when the patience is spent."""
        delay = random.uniform(0, min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** tries))
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(delay, left))
        return True

    def gave_up(self, method: str, path: str, failure: Exception) -> StoreError:
        if isinstance(failure, StoreError):
            why = str(failure)
        else:
            why = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        error = Unreachable(f"the runyard server at {self.origin} did not answer {method} {path} "
                            f"({why}); check that it is running and reachable")
        error.__cause__ = failure
        return error


def encode_json(body: Any) -> bytes:
    """``body`` as JSON, or a ValidationError if it holds a value JSON cannot carry as it
    is (NaN and infinities, which orjson would write as null; integers beyond 64 bits; text
    that is not UTF-8): refused as a whole, never sent changed."""
    try:
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as exc:
        raise _not_json(str(exc)) from None
    if not _finite(body):
        raise _not_json("NaN or an infinity")
    return data


def _not_json(what: str) -> ValidationError:
    return ValidationError(f"a value cannot travel to the server as JSON ({what}); store a "
                           "number JSON can hold, or the value as text")


def _finite(body: Any) -> bool:
    """Whether every float in ``body`` (dicts and lists, walked without recursion) is finite."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if item - item != 0.0:
                return False
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


def _query(params: Mapping[str, Any] | list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """Query parameters with the ``None`` ones left out (a list keeps repeated keys)."""
    items = params.items() if isinstance(params, Mapping) else (params or [])
    return [(k, _param(v)) for k, v in items if v is not None]


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _may_have_arrived(exc: Exception) -> bool:
    """Whether a request that failed so may have been handled by the server (a refused
    connection or a pool wait was never sent)."""
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def error_from(response: httpx.Response) -> RunyardError:
    """The ``runyard.errors`` exception an error answer stands for, with its one line."""
    detail, kind = _detail(response)
    found = error_class(kind) if kind else None
    if found is not None and found is not MissingDependencyError:
        cls: type[RunyardError] = found
    else:
        cls = _by_status(response.status_code)
    error = cls.__new__(cls)
    Exception.__init__(error, _with_hint(detail, response.status_code))
    return error


def _by_status(status: int) -> type[RunyardError]:
    if status in (401, 403):
        return ConfigError
    if status >= 500:
        return StoreError
    return BY_STATUS.get(status, RunyardError)


def _with_hint(detail: str, status: int) -> str:
    if status == 401:
        return f"{detail} (the server refused the token: `runyard login URL` or RUNYARD_TOKEN)"
    if status == 403:
        return f"{detail} (this token may only read: use a token that may write)"
    return detail


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        kind = body.get("type")
        return body["detail"], kind if isinstance(kind, str) else None
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return f"the server answered {response.status_code}: {text}", None
