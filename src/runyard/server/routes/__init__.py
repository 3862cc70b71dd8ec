"""The routers of the REST API, one module per part; the app factory includes each of them.

Every module here exposes ``router`` (an ``APIRouter`` with no prefix: the app mounts it under
``/api/v1``, adds the token check (``runyard.server.auth.require_token``) and the common error
answers (``runyard.server.errors.COMMON``) to each of its routes). Routes declare any further
error answers with ``errors.responses(…)`` and raise ``runyard.errors`` classes; answers with
many records are built with ``json_answer`` (orjson, no pydantic on the way out) and declare
their schema with ``responses={200: {"model": …}}``. The helpers below are shared by them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from runyard.core.context import StoreContext
from runyard.errors import RunNotFound, ValidationError
from runyard.model import looks_like_id
from runyard.server.answers import json_answer
from runyard.stores import RunStore

__all__ = ["context_of", "decoded", "json_answer", "no_content", "run_id", "store_of"]

def context_of(request: Request) -> StoreContext:
    """The store context the app serves."""
    context: StoreContext = request.app.state.context
    return context


def store_of(request: Request) -> RunStore:
    return context_of(request).store


def run_id(value: str) -> str:
    """``value`` if it could be a run id, else RunNotFound (no store is asked for a path like
    ``..``)."""
    if not looks_like_id(value):
        raise RunNotFound(value)
    return value


def no_content() -> Response:
    return Response(status_code=204)


def decoded(what: str, decode: Any, data: Any) -> Any:
    """``decode(data)`` (a codec function), its KeyError/TypeError/ValueError as a
    ValidationError that names ``what``."""
    try:
        return decode(data)
    except ValidationError:
        raise
    except KeyError as exc:
        raise ValidationError(f"invalid {what}: it needs the field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(f"invalid {what}: {exc}") from None
