"""A runyard server in a thread of the test process, for the http store's tests.

``ThreadServer`` runs ``create_app`` under uvicorn on 127.0.0.1 over a real SQLite store, with
a writer and a read-only token added to that store first. It can be stopped and started again
on the same port (a server restart, as a client sees it), which the spool and retry tests need.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def add_token(store: Any, name: str, *, read_only: bool = False) -> str:
    """A new token named ``name`` in ``store``; its secret text."""
    from runyard.model.tokens import TokenRecord

    text = "ry_" + secrets.token_urlsafe(32)
    digest = hashlib.sha256(text.encode()).hexdigest()
    store.add_token(TokenRecord(name, digest, read_only, time.time()))
    return text


class ThreadServer:
    """``create_app`` over ``sqlite:///<folder>/runyard.db`` served by uvicorn in a thread."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        from runyard.core.context import open_context

        self.folder = folder
        self.store_url = f"sqlite://{folder / 'runyard.db'}"
        self.context = open_context(self.store_url, blobs=folder / "blobs")
        self.port = port or free_port()
        self.token = add_token(self.context.store, "writer")
        self.reader = add_token(self.context.store, "reader", read_only=True)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        import uvicorn

        from runyard.server.app import create_app

        app = create_app(self.context, access_log=False)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
            self._server = self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None


class LosingProxy:
    """A TCP proxy to ``127.0.0.1:upstream`` that can lose answers: while ``lose`` > 0, the
    next answer the server starts to send is not passed on, and the client's connection is
    cut instead (the server did the work; the client never heard). The client must resend.
    With ``cut_after``, a connection is cut once that many more request bytes went through
    (an upload broken halfway); ``sent`` counts the request bytes passed on."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.port = upstream, free_port()
        self.lose = 0
        self.cut_after: int | None = None  # cut the connection after this many request bytes
        self.sent = 0  # request bytes passed on, in all
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LosingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._take_loss():
                    break
                if not answers:
                    data, cut = self._take_request(data)
                    sink.sendall(data)
                    if cut:
                        break
                    continue
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _take_loss(self) -> bool:
        with self._lock:
            if self.lose > 0:
                self.lose -= 1
                return True
            return False

    def _take_request(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` to pass on, and whether to cut the connection after it."""
        with self._lock:
            if self.cut_after is not None and self.cut_after <= len(data):
                data, self.cut_after = data[:self.cut_after], None
                self.sent += len(data)
                return data, True
            if self.cut_after is not None:
                self.cut_after -= len(data)
            self.sent += len(data)
            return data, False
