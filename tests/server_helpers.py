"""Real runyard servers for tests: the app under uvicorn in a thread, or ``runyard server``.

``served(context)`` runs ``create_app(context)`` under uvicorn on 127.0.0.1 (a free port) in a
background thread of the test process, so a test can look at the same store directly.
``server_process(url)`` starts ``runyard server --store URL --port 0`` as a child process
(several workers if asked) and reads the URL it prints; leaving the block stops it by SIGTERM
and waits for it. ``token(store)`` makes a token; ``client(base, token)`` an httpx client
that sends it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from runyard.core import tokens
from runyard.core.context import StoreContext, open_context
from runyard.stores import RunStore

API = "/api/v1"
START_TIMEOUT_S = 60.0


def token(store: RunStore, name: str | None = None, *, read_only: bool = False) -> str:
    """A new token in ``store`` (named ``name`` or at random); its text."""
    text, _ = tokens.create(store, name or f"t-{uuid.uuid4().hex[:12]}", read_only=read_only)
    return text


def client(base: str, token_text: str | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client for the API at ``base`` (``http://host:port``), sending the token."""
    headers = {} if token_text is None else {"Authorization": f"Bearer {token_text}"}
    return httpx.Client(base_url=base + API, headers=headers, timeout=30.0, **kwargs)


def wait_healthy(base: str, timeout: float = START_TIMEOUT_S,
                 alive: Any = None) -> None:
    """Wait until ``base``'s /healthz answers 200 (``alive()``: False stops the wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the server at {base} ended before it answered")
        try:
            if httpx.get(f"{base}{API}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the server at {base} did not answer within {timeout}s")


def wait_started(server: Any, thread: threading.Thread,
                 timeout: float = START_TIMEOUT_S) -> None:
    """Wait until uvicorn in ``thread`` serves (its store need not answer yet)."""
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)


@dataclass
class Served:
    """A server in this process: ``base`` (``http://127.0.0.1:PORT``), its context."""

    base: str
    context: StoreContext
    server: Any = field(repr=False)

    @property
    def store(self) -> RunStore:
        return self.context.store

    def client(self, token_text: str | None = None, **kwargs: Any) -> httpx.Client:
        return client(self.base, token_text, **kwargs)


@contextmanager
def served(context: StoreContext | str, **app_kwargs: Any) -> Iterator[Served]:
    """``create_app(context, **app_kwargs)`` under uvicorn on a free port, in a thread."""
    import uvicorn

    from runyard.server.app import create_app
    from runyard.server.serve import bind, url_of

    if isinstance(context, str):
        context = open_context(context)
    app_kwargs.setdefault("access_log", False)
    app = create_app(context, **app_kwargs)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="test-uvicorn", daemon=True)
    thread.start()
    base = url_of(sock)
    try:
        wait_started(server, thread)
        yield Served(base, context, server)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class ServerProcess:
    """``runyard server`` running as a child process."""

    base: str
    process: subprocess.Popen[str]
    url: str

    def client(self, token_text: str | None = None, **kwargs: Any) -> httpx.Client:
        return client(self.base, token_text, **kwargs)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait: the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


def runyard_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runyard", *args]


@contextmanager
def server_process(url: str, *args: str, workers: int = 1,
                   env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``runyard --store URL server --port 0 --workers N ARGS…`` until the block ends.

    Its stdout's first line is the URL it serves; stderr (access log) goes to the test's
    stderr."""
    command = runyard_command("--store", url, "server", "--port", "0", "--workers",
                              str(workers), *args)
    full_env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=full_env)
    try:
        assert process.stdout is not None
        base = process.stdout.readline().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"runyard server did not start (exit {process.wait(30)})")
        wait_healthy(base, alive=lambda: process.poll() is None)
        yield ServerProcess(base, process, url)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
