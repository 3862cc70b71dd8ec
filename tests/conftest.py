"""Shared fixtures: every store backend by URL, real servers included."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

pytest_plugins = ["pg_server", "ray_cluster", "live_servers"]

BACKENDS = ["memory", "file", "chunked", "sqlite", "postgresql"]
_STARTED = pytest.StashKey[float]()  # when the session started (see pytest_sessionfinish)


def backend_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "memory":
        return f"memory://{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite://{tmp_path}/store/runyard.db"
    if kind == "postgresql":  # keeps no files: its blobs go where configuration says
        request.getfixturevalue("monkeypatch").setenv("RUNYARD_BLOBS", str(tmp_path / "blobs"))
        return str(request.getfixturevalue("pg_url"))
    return f"{kind}://{tmp_path}/store"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, tmp_path, request)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own with no runyard settings from the environment."""
    for var in ("RUNYARD_STORE", "RUNYARD_CONFIG", "RUNYARD_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "pg_url" in fixtures:
            item.add_marker(pytest.mark.postgres)
        callspec = getattr(item, "callspec", None)
        on_ray = callspec is not None and callspec.params.get("runtime") == "ray"
        if on_ray or "ray_cluster" in fixtures or "ray_config" in fixtures:
            # one Ray cluster for the session: every test that needs it runs on one xdist
            # worker (scripts/test.sh runs pytest with --dist loadgroup)
            item.add_marker(pytest.mark.xdist_group("ray"))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the ``run exec`` agents this session's commands started (on the main process
    only: with xdist, after every worker has finished)."""
    if hasattr(session.config, "workerinput") or _STARTED not in session.config.stash:
        return
    import psutil

    started = session.config.stash[_STARTED]
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        cmdline = proc.info["cmdline"] or []
        if "runyard.cli.agent" in cmdline and (proc.info["create_time"] or 0) >= started - 1:
            with contextlib.suppress(psutil.Error):
                proc.terminate()

