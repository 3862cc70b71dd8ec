"""``GET /versions/{ref}/runs``: a workspace version and the runs recorded from it, found on
the server (the version is in each run's internals, which the list's filters do not reach);
and a recorded run renamed through the server, whose ``runs/`` folder goes with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashboard_run_helpers import seed_recorded
from runyard.model import Kind
from server_helpers import Served, served, token
from test_server_runs import error_of


@pytest.fixture
def versioned(tmp_path: Path) -> Iterator[tuple[Served, tuple[str, str, str]]]:
    with served(f"sqlite://{tmp_path}/store/runyard.db") as server:
        seeded = seed_recorded(server.context, tmp_path)
        yield server, seeded


def test_a_versions_runs_are_found_by_its_id_or_name_oldest_first(
        versioned: tuple[Served, tuple[str, str, str]]) -> None:
    server, (version, recorded, again) = versioned
    name = server.store.get_run(version).name
    with server.client(token(server.store)) as api:
        for ref in (version, name):
            answer = api.get(f"/versions/{ref}/runs")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["version"]["id"] == version and body["version"]["kind"] == "version"
            assert [r["id"] for r in body["runs"]] == [recorded, again]
            assert {r["kind"] for r in body["runs"]} == {Kind.RECORDED.value}


def test_an_unknown_version_or_another_runs_id_is_a_one_line_404(
        versioned: tuple[Served, tuple[str, str, str]]) -> None:
    server, (_, recorded, _) = versioned
    with server.client(token(server.store)) as api:
        for ref in ("no-such-version", recorded):
            detail = error_of(api.get(f"/versions/{ref}/runs"), 404, "VersionNotFound")
            assert ref in detail


def test_without_a_token_nothing_is_told(versioned: tuple[Served, tuple[str, str, str]]) -> None:
    server, (version, _, _) = versioned
    with httpx.Client(base_url=f"{server.base}/api/v1") as anonymous:
        answer = anonymous.get(f"/versions/{version}/runs")
    assert answer.status_code == 401 and version not in answer.text


def test_renaming_a_recorded_run_through_the_server_renames_its_runs_folder(
        versioned: tuple[Served, tuple[str, str, str]], tmp_path: Path) -> None:
    """As ``runyard run rename`` does (the dashboard's rename goes through here)."""
    server, (_, recorded, _) = versioned
    runs = tmp_path / "ws" / "runs"
    old = server.store.get_run(recorded).name
    assert (runs / old).is_dir()
    with server.client(token(server.store)) as api:
        answer = api.post(f"/runs/{recorded}/rename", json={"name": "renamed-on-server"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["internals"]["folder"] == "runs/renamed-on-server"
    assert (runs / "renamed-on-server" / "out" / "result.txt").read_text() == "forty-two\n"
    assert not (runs / old).exists()
