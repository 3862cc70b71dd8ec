"""Serving the app with uvicorn: one process, or several workers on one socket.

The socket is bound here, before any worker starts, so ``--port 0`` works and the URL printed
is the one that answers. Each worker builds its own app from the environment
(``runyard.server.app.from_env``) and opens its own store connections. Several workers need a
store that several processes can share; ``memory://`` lives in one process, so it is refused.
SIGTERM or SIGINT stops the server gracefully: no new connection is accepted, requests in
flight finish (up to ``graceful_s``), then each worker closes its store.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from runyard.errors import ConfigError, MissingDependencyError
from runyard.server import app as factory
from runyard.stores.location import parse_url

GRACEFUL_S = 30
# Idle keep-alive connections are kept longer than the http store keeps them (60 s), so the
# client closes first and never sends on a connection the server is closing.
KEEP_ALIVE_S = 75

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(message)s"},
                   "level": {"format": "%(levelname)s: %(message)s"}},
    "handlers": {
        "plain": {"class": "logging.StreamHandler", "formatter": "plain",
                  "stream": "ext://sys.stderr"},
        "level": {"class": "logging.StreamHandler", "formatter": "level",
                  "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "runyard.server.access": {"handlers": ["plain"], "level": "INFO", "propagate": False},
        "runyard.server": {"handlers": ["level"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["level"], "level": "WARNING", "propagate": False},
    },
}


def check_workers(url: str, workers: int) -> None:
    """Refuse what cannot work: no workers, or several over a one-process store."""
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {workers}")
    if workers > 1 and parse_url(url).scheme == "memory":
        raise ConfigError(
            f"--workers {workers} needs a store several processes can share; a memory:// "
            "store lives in one process: use --workers 1, or a sqlite:// or postgresql:// "
            "store")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); ConfigError if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                          "choose another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8765, workers: int = 1,
          cors_origin: str | None = None, max_body: int | None = None,
          access_log: bool = True, graceful_s: int = GRACEFUL_S,
          announce: Callable[[str], None] = print) -> None:
    """Serve the store at ``url`` until SIGTERM or SIGINT; ``announce`` gets the base URL
    once the socket listens."""
    check_workers(url, workers)
    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess
    except ImportError:
        raise MissingDependencyError("uvicorn", "server") from None
    _environment(url, cors_origin, max_body, access_log)
    sock = bind(host, port)
    config = uvicorn.Config(
        f"{factory.__name__}:from_env", factory=True, workers=workers, log_config=LOG_CONFIG,
        access_log=False, server_header=False, timeout_graceful_shutdown=graceful_s,
        proxy_headers=False, lifespan="on", timeout_keep_alive=KEEP_ALIVE_S)
    announce(url_of(sock))
    with sock, _quiet_stop():
        if workers == 1:
            uvicorn.Server(config).run(sockets=[sock])
        else:
            Multiprocess(config, sockets=[sock]).run()


def _environment(url: str, cors_origin: str | None, max_body: int | None,
                 access_log: bool) -> None:
    """Settings for the workers' ``from_env`` (they may be other processes)."""
    os.environ[factory.STORE_ENV] = url
    os.environ[factory.CORS_ENV] = cors_origin or ""
    os.environ[factory.MAX_BODY_ENV] = "" if max_body is None else str(max_body)
    os.environ[factory.ACCESS_LOG_ENV] = "1" if access_log else "0"


@contextmanager
def _quiet_stop() -> Iterator[None]:
    """SIGTERM and SIGINT end ``serve`` by returning, once uvicorn has stopped gracefully
    (uvicorn raises the signal again after its shutdown: here it is a no-op)."""
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in kept:
        signal.signal(sig, lambda *_: None)
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
