"""Live ``runyard server`` processes for the HTTP tests (a pytest plugin, see ``conftest.py``).

The server is tested as users run it: a real ``runyard server`` subprocess on 127.0.0.1 over a
real store, reached through real sockets. uvicorn takes a second or more to start (four
workers over PostgreSQL longer), so ``live_sqlite`` and ``live_postgres`` are session-scoped;
between tests ``LiveServer.wipe`` deletes every row of the backing store's SQL tables through a
connection of its own (the server keeps no cache, so it sees an empty store at once). The
tokens are added to the store before the server starts (``runyard.core.tokens.create``, what
``runyard server token create`` calls), so the tests know them without parsing any command's
output; wiping keeps them.

Tests that use these fixtures carry ``pytest.mark.xdist_group("live_servers")`` so one xdist
worker starts the servers once. ``start_server`` is also what the outage test and
``benchmarks/bench_server.py`` use to run a server of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

GROUP = "live_servers"  # the xdist_group of every test using the session servers
START_TIMEOUT = 60.0
KEPT_TABLES = ("runyard_schema",)  # never wiped (tables named *token* are kept too)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_token(store_url: str, name: str, *, read_only: bool = False) -> str:
    """Add a token named ``name`` to the store at ``store_url``; its secret text."""
    from runyard.core import tokens
    from runyard.stores import open_store

    store = open_store(store_url)
    try:
        text, _ = tokens.create(store, name, read_only=read_only)
    finally:
        store.close()
    return text


@dataclass
class LiveServer:
    """One ``runyard server`` subprocess over ``store_url``, listening on ``port``."""

    store_url: str
    port: int
    log: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # name -> secret

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.tokens["writer"]

    @property
    def read_token(self) -> str:
        return self.tokens["reader"]

    def start(self, *, wait: bool = True) -> None:
        """Start the server process (in a session of its own, so its workers stop with it)."""
        args = [sys.executable, "-m", "runyard", "server", "--store", self.store_url,
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env}, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"runyard server exited ({self.proc.returncode}):\n"
                                   + self.log_tail())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/api/v1/healthz", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"runyard server not ready in {timeout:.0f} s:\n" + self.log_tail())

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server's process group (uvicorn's workers included)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def client(self, token: str | None = None, **kwargs: Any) -> Any:
        """An ``httpx.Client`` on this server with ``token`` (default: the writer's)."""
        import httpx

        return httpx.Client(base_url=self.url + "/api/v1", headers=self.headers(token),
                            timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def wipe(self) -> None:
        """Delete every row of the backing store's tables but the schema version and tokens."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"runyard server on port {self.port} is not running:\n"
                               + self.log_tail())
        if self.store_url.startswith("sqlite:"):
            _wipe_sqlite(self.store_url.removeprefix("sqlite://"))
        else:
            _wipe_postgres(self.store_url)


def _wanted(table: str) -> bool:
    return table not in KEPT_TABLES and "token" not in table and not table.startswith("sqlite_")


def _wipe_sqlite(path: str) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in filter(_wanted, tables):
            conn.execute(f'DELETE FROM "{table}"')
        conn.execute("COMMIT")
    finally:
        conn.close()


def _wipe_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in filter(_wanted, tables):
            conn.execute(f'DELETE FROM "{table}"')


def launch(store_url: str, folder: Path, *, workers: int = 1, env: dict[str, str] | None = None,
           port: int | None = None) -> LiveServer:
    """A started server over ``store_url`` with a writer and a reader token."""
    folder.mkdir(parents=True, exist_ok=True)
    server = LiveServer(store_url, port or free_port(), folder / "server.log", workers,
                        dict(env or {}))
    server.tokens = {"writer": make_token(store_url, "writer"),
                     "reader": make_token(store_url, "reader", read_only=True)}
    for attempt in range(3):  # another process may take the free port before the server does
        try:
            server.start()
            return server
        except RuntimeError:
            server.kill()
            if attempt == 2 or port is not None:
                raise
            server.port = free_port()
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running(store_url: str, folder: Path, **kwargs: Any) -> Iterator[LiveServer]:
    server = launch(store_url, folder, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server over a SQLite store, one worker (the default)."""
    folder = tmp_path_factory.mktemp("live-sqlite")
    with running(f"sqlite://{folder}/store/runyard.db", folder) as server:
        yield server


@pytest.fixture(scope="session")
def live_postgres(tmp_path_factory: pytest.TempPathFactory, pg_server: Any
                  ) -> Iterator[LiveServer]:
    """A server with four workers over a database of the session's PostgreSQL."""
    import psycopg

    folder = tmp_path_factory.mktemp("live-postgres")
    database = f"live_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    env = {"RUNYARD_BLOBS": str(folder / "blobs")}
    with running(pg_server.url(database), folder, workers=4, env=env) as server:
        yield server


@pytest.fixture
def live_server(live_sqlite: LiveServer) -> LiveServer:
    """The SQLite-backed session server, emptied for this test."""
    live_sqlite.wipe()
    return live_sqlite
