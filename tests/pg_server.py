"""A real PostgreSQL server for the tests (a pytest plugin: ``pytest_plugins = ["pg_server"]``).

``pg_server`` (session scope; one server per xdist worker) runs ``initdb`` and ``pg_ctl`` from
PATH in a temporary folder, as the ``postgres`` user when the tests run as root, on a free port
with ``fsync=off``; it is stopped and removed at the end. ``pg_url`` (function scope) creates a
fresh database for one test and drops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_ATTEMPTS = 3
SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c max_connections=200"
)


@dataclass(frozen=True)
class PgServer:
    folder: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str]) -> None:
    done = subprocess.run(_as_postgres(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _make_cluster() -> Path:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail(
            "PostgreSQL 15 is needed for the postgres tests: `initdb` and `pg_ctl` are not on "
            "PATH (install the postgresql server package, or put its bin/ folder on PATH)",
            pytrace=False,
        )
    folder = Path(tempfile.mkdtemp(prefix="pg.", dir="/tmp"))  # short: socket paths are limited
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    _run(["initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
          "--no-sync", "--no-instructions"])
    return folder


def _start(folder: Path) -> int:
    """Start the cluster on a free port (retrying: another worker may take the port first)."""
    for attempt in range(START_ATTEMPTS):
        port = _free_port()
        options = f"-k {folder} -p {port} {SETTINGS}"
        try:
            _run(["pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                  "-t", "30", "-o", options, "start"])
            return port
        except RuntimeError:
            if attempt == START_ATTEMPTS - 1:
                log = (folder / "log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start; its log ends:\n{log}") from None
    raise AssertionError("unreachable")


def _stop(folder: Path) -> None:
    try:
        _run(["pg_ctl", "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    folder = _make_cluster()
    try:
        port = _start(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        yield PgServer(folder, port)
    finally:
        _stop(folder)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    import psycopg

    database = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    try:
        yield pg_server.url(database)
    finally:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
