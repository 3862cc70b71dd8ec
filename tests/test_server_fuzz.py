"""schemathesis against the live server's published OpenAPI schema: no 5xx, answers as declared.

The schema is read from a live ``runyard server`` (SQLite, ``tests/live_servers.py``) at
``/api/v1/openapi.json``. Every operation in it gets a few generated requests that fit its
schema and a few that do not (schemathesis's strategies, driven by hypothesis with a small
``max_examples`` to bound the time), sent over real sockets; an operation on a run or a buffer
also gets requests that fit its schema aimed at a run and a buffer that exist (made afresh for
each operation), so generated bodies reach the store instead of stopping at "no such run".
Each answer must not be a 5xx, its status code must be one the operation declares, and its
content type and body must match the declared schema. A first pass uses a writer token; a
second a read-only token, with which every method other than GET and HEAD must be refused
with 403.

schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) cannot be used: with
pytest 9 it reads ``request.node._nodeid``, which is gone. So one test per pass walks the
operations itself and reports every failing operation at once.

Left out: the server-sent-event routes (``/watch``), whose answers never end by design.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from live_servers import GROUP, LiveServer
from runyard.model import new_id, run_to_dict
from runyard.model.registry import Buffer, buffer_to_doc
from runyard.testing import make_run

pytestmark = pytest.mark.xdist_group(GROUP)

EXAMPLES = 5  # per operation and mode: about a minute for both passes on two cores
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
REAL_IDS = ("rid", "run_id", "ref", "buffer_id")  # path parameters that name a run or buffer
OPEN = ("/healthz", "/login")  # routes that need no token
ENDLESS = r".*/watch.*"  # server-sent events: an answer that never ends
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))
Extra = Callable[[Any, Any], None]


def fuzz(server: LiveServer, token: str, extra: Extra | None = None) -> list[str]:
    """Every operation, valid and invalid requests with ``token``; what failed, one per line."""
    headers = server.headers(token)
    schema = schemathesis.openapi.from_url(server.url + "/api/v1/openapi.json",
                                           headers=headers, timeout=30)
    failures = []
    for result in schema.exclude(path_regex=ENDLESS).get_all_operations():
        operation = cast(Any, result).ok()  # an Err (invalid schema) raises here
        tries: list[tuple[str, GenerationMode, dict[str, str]]] = [
            ("positive", GenerationMode.POSITIVE, {}), ("negative", GenerationMode.NEGATIVE, {})]
        if set(re.findall(r"{(\w+)}", operation.path)) & set(REAL_IDS):
            tries.append(("positive, real ids", GenerationMode.POSITIVE, real_ids(server)))
        for label, mode, ids in tries:
            problem = probe(server, headers, operation, mode, extra, ids)
            if problem:
                failures.append(f"{operation.label} ({label}): {problem}")
    return failures


def real_ids(server: LiveServer) -> dict[str, str]:
    """A new run and a new buffer, made with the writer's token; path parameters naming them."""
    with server.client() as api:
        run = api.post("/runs", json=run_to_dict(make_run()))
        buffer = api.post("/buffers", json=buffer_to_doc(Buffer(new_id(), time.time())))
    assert run.status_code == 201 and buffer.status_code == 201, (run.text, buffer.text)
    ids = {name: run.json()["id"] for name in REAL_IDS[:3]}
    ids["buffer_id"] = buffer.json()["id"]
    return ids


def probe(server: LiveServer, headers: dict[str, str], operation: Any, mode: GenerationMode,
          extra: Extra | None, ids: dict[str, str]) -> str | None:
    names = set(re.findall(r"{(\w+)}", operation.path))
    fixed = {name: value for name, value in ids.items() if name in names}

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def check(case: Any) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if extra is not None:
            extra(case, response)

    try:
        check()
    except Unsatisfiable:
        return None  # no request of this mode exists for the operation
    except Exception as exc:  # a failed check: report it with the others
        return " ".join(str(exc).split())[:300]
    return None


def test_no_operation_fails_or_breaks_its_schema_for_a_writer(live_server: LiveServer) -> None:
    failures = fuzz(live_server, live_server.token)
    assert not failures, "\n".join(failures)


def refused_to_reader(case: Any, response: Any) -> None:
    if case.method.upper() not in ("GET", "HEAD") and not case.path.endswith(OPEN):
        assert response.status_code == 403, (case.method, case.formatted_path,
                                             response.status_code, response.text[:300])


def test_a_read_only_token_reads_and_never_writes(live_server: LiveServer) -> None:
    failures = fuzz(live_server, live_server.read_token, refused_to_reader)
    assert not failures, "\n".join(failures)
