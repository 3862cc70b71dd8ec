"""schemathesis against the live server's published OpenAPI schema: no 5xx, answers as declared.

The schema is read from a live ``runyard server`` (SQLite, ``tests/live_servers.py``) at
``/api/v1/openapi.json``. Every operation in it gets a few generated requests that fit its
schema and a few that do not (schemathesis's strategies, driven by hypothesis with a small
``max_examples`` to bound the time), sent over real sockets. Each answer must not be a 5xx,
its status code must be one the operation declares, and its content type and body must match
the declared schema. A first pass uses a writer token; a second a read-only token, with which
every method other than GET and HEAD must be refused with 403.

schemathesis's own pytest loader (``schemathesis.pytest.from_fixture``) cannot be used: with
pytest 9 it reads ``request.node._nodeid``, which is gone. So one test per pass walks the
operations itself and reports every failing operation at once.

Left out: the server-sent-event routes (``/watch``), whose answers never end by design.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.xdist_group(GROUP)

EXAMPLES = 6  # per operation and mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
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
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            problem = probe(server, headers, operation, mode, extra)
            if problem:
                failures.append(f"{operation.label} ({mode.value}): {problem}")
    return failures


def probe(server: LiveServer, headers: dict[str, str], operation: Any, mode: GenerationMode,
          extra: Extra | None) -> str | None:
    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
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
        return " ".join(str(exc).split())[:1500]
    return None


def test_no_operation_fails_or_breaks_its_schema_for_a_writer(live_sqlite: LiveServer) -> None:
    failures = fuzz(live_sqlite, live_sqlite.token)
    assert not failures, "\n".join(failures)


def refused_to_reader(case: Any, response: Any) -> None:
    if case.method.upper() not in ("GET", "HEAD") and not case.path.endswith(OPEN):
        assert response.status_code == 403, (case.method, case.formatted_path,
                                             response.status_code, response.text[:300])


def test_a_read_only_token_reads_and_never_writes(live_sqlite: LiveServer) -> None:
    failures = fuzz(live_sqlite, live_sqlite.read_token, refused_to_reader)
    assert not failures, "\n".join(failures)
