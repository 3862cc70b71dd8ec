"""JSON answers serialised by orjson, the server's one response class.

FastAPI's own encoder goes through pydantic; orjson on plain dicts (what the codec makes) is
several times faster, which is what a page of runs or a column of metric values needs.
NaN and infinities, which JSON lacks, become null here: values that must keep them (metric
values) are encoded as strings by the codec first. An integer past 64 bits (Python's JSON
reads them; a run's metadata may hold one) is beyond orjson: such an answer is written by the
standard library instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

JSON = "application/json"


class OrjsonAnswer(JSONResponse):
    """A ``JSONResponse`` rendered by orjson (keys that are not strings are written as text)."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # (an integer orjson cannot write)
            return json.dumps(plain(content), ensure_ascii=False, allow_nan=False,
                              separators=(",", ":"), default=str).encode()


def plain(value: Any) -> Any:
    """``value`` as orjson would write it: non-finite floats as None, keys as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def json_answer(data: Any, status: int = 200, headers: dict[str, str] | None = None
                ) -> Response:
    """``data`` as a JSON answer."""
    return OrjsonAnswer(data, status_code=status, headers=headers)
