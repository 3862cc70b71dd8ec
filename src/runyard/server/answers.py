"""JSON answers serialised by orjson, the server's one response class.

FastAPI's own encoder goes through pydantic; orjson on plain dicts (what the codec makes) is
several times faster, which is what a page of runs or a column of metric values needs.
NaN and infinities, which JSON lacks, become null here: values that must keep them (metric
values) are encoded as strings by the codec first.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

JSON = "application/json"


class OrjsonAnswer(JSONResponse):
    """A ``JSONResponse`` rendered by orjson (keys that are not strings are written as text)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def json_answer(data: Any, status: int = 200, headers: dict[str, str] | None = None
                ) -> Response:
    """``data`` as a JSON answer."""
    return OrjsonAnswer(data, status_code=status, headers=headers)
