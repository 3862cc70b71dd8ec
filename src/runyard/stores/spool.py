"""The outbox of the ``http(s)://`` store: appends and runs' ends kept on disk while the
server is away.

When a batch of metrics, events or logs cannot reach the server (``httpclient.Unreachable``),
it is written here, with the ``Idempotency-Key`` it was sent with, and a background thread
resends the entries in order, backing off while the server stays down. Once anything is
spooled, every later append of that store is spooled behind it until the spool is empty, so no
append overtakes a spooled one; the server de-duplicates by key, so a batch sent twice (its
first try answered too late, or its process killed before the file was removed) counts once.
A run's end (its final status) that cannot reach the server is spooled the same way, behind
that run's data; ``httpends`` says how each kind of entry is sent and how a resent end settles.

    <RUNYARD_SPOOL, else $XDG_STATE_HOME/runyard/spool, else ~/.local/state/runyard/spool>/
      <server>/origin              the server's URL (no token), for ``runyard sync``
      <server>/<owner>/lock        flock-held by the process that owns the folder
      <server>/<owner>/NNNNNNNNNNNN.batch   {"run", "key"[, "op": "end"]} on one line, then
                                   the JSON body (of ``/batch``, or of ``/status`` for an end)
      <server>/rejected/           entries the server refused (4xx), kept for a person to see

Each file is written atomically (``runyard.fsio``). Only the process holding a folder's lock
resends its files: a folder whose owner is gone (its lock free) is adopted by the next store
opened for that server, or by ``runyard sync``, and resent before that store's own entries.
``close`` waits a bounded time for the spool to drain and leaves the rest on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from runyard.errors import ConfigError, RunyardError
from runyard.fsio import atomic_write_bytes
from runyard.stores.httpclient import HttpClient, Unreachable
from runyard.stores.httpends import BATCH, resend

SPOOL_ENV = "RUNYARD_SPOOL"
SUFFIX = ".batch"
FIRST_DELAY_S, MAX_DELAY_S = 0.05, 2.0
DRAIN_S = float(os.environ.get("RUNYARD_SPOOL_DRAIN", "10"))  # close() waits this long at most

Send = Callable[[str, str, bytes, str], None]  # (run id, key, body, op): raises Unreachable
#                                                or a RunyardError if the server refuses it

log = logging.getLogger(__name__)


def spool_root() -> Path:
    explicit = os.environ.get(SPOOL_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "runyard" / "spool"


def server_folder(origin: str) -> Path:
    """The spool folder of the server at ``origin`` (readable name + a hash of the URL)."""
    parts = urlsplit(origin)
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc + parts.path).strip("_")
    return spool_root() / f"{readable}-{hashlib.sha256(origin.encode()).hexdigest()[:10]}"


def spooled_servers() -> list[str]:
    """The servers with a spool folder here (their URLs)."""
    root = spool_root()
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            found.append((folder / "origin").read_text(encoding="utf-8").strip())
        except OSError:
            continue
    return found


class Spool:
    """The outbox of one store for the server at ``origin``; entries go out through ``send``."""

    def __init__(self, origin: str, send: Send) -> None:
        self.origin, self._send = origin, send
        self.folder = server_folder(origin)
        self._cond = threading.Condition()
        self._queue: deque[Path] = deque()  # every batch file not sent yet, in order
        self._held: list[tuple[Path, int]] = []  # (owner folder, its locked fd)
        self._own: Path | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._pid = os.getpid()
        self.sent = self.rejected = 0

    def __repr__(self) -> str:
        return f"Spool({self.origin!r}, pending={len(self._queue)})"

    @property
    def pending(self) -> int:
        return len(self._queue) if self._pid == os.getpid() else 0

    # -- taking batches ------------------------------------------------------------------------
    def add(self, run_id: str, key: str, body: bytes, op: str = BATCH) -> None:
        """Keep one entry (``op``: an append ``batch``, or a run's ``end``) on disk behind
        the ones already here; the thread sends it."""
        if self._pid != os.getpid():
            self._forget_parent()
        with self._cond:
            own = self._own or self._make_own()
            self._seq += 1
            path = own / f"{self._seq:012d}{SUFFIX}"
            meta = {"run": run_id, "key": key} if op == BATCH else {"run": run_id, "key": key,
                                                                     "op": op}
            head = json.dumps(meta).encode() + b"\n"
            atomic_write_bytes(path, head + body)
            self._queue.append(path)
            self._start()
            self._cond.notify_all()

    def _forget_parent(self) -> None:
        """In a forked child: the parent's folders, batches and thread stay the parent's;
        the child spools into a folder of its own (and lets go of its copies of the parent's
        locks, so they end with the parent)."""
        for _, fd in self._held:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._cond = threading.Condition()
        self._queue, self._held, self._own, self._thread = deque(), [], None, None
        self._seq, self._pid = 0, os.getpid()

    def adopt(self) -> int:
        """Take over the folders of this server whose owner is gone; how many batches."""
        found = 0
        if not self.folder.is_dir():
            return 0
        with self._cond:
            for owner in sorted(self.folder.iterdir()):
                if owner.name.startswith(".") or owner == self._own or not owner.is_dir() \
                        or owner.name == "rejected":
                    continue
                found += self._adopt(owner)
            if found:
                self._start()
        return found

    def _adopt(self, owner: Path) -> int:
        fd = _lock(owner / "lock", create=False)
        if fd is None:
            return 0
        files = sorted(owner.glob("*" + SUFFIX))
        if not files:
            _remove_folder(owner, fd)
            return 0
        self._held.append((owner, fd))
        self._queue.extend(files)  # (behind any of this store's own: the head may be sending)
        return len(files)

    def _make_own(self) -> Path:
        """This process's folder, made under a hidden name and locked before it is shown."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # (the user's data)
        origin_file = self.folder / "origin"
        if not origin_file.exists():
            atomic_write_bytes(origin_file, self.origin.encode() + b"\n")
        name = f"{os.getpid()}-{os.urandom(6).hex()}"
        hidden = self.folder / f".new-{name}"
        hidden.mkdir(mode=0o700)
        fd = _lock(hidden / "lock", create=True)
        assert fd is not None  # (nobody else knows the hidden folder)
        own = self.folder / name
        os.rename(hidden, own)
        self._held.append((own, fd))
        self._own = own
        return own

    # -- sending ---------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="runyard-spool", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        tries = 0
        while True:
            with self._cond:
                if not self._queue or (self._closing and tries and self._past_deadline()):
                    self._cond.notify_all()
                    return
                path = self._queue[0]
            if self.send_one(path):
                tries = 0
                continue
            tries += 1
            with self._cond:
                delay = random.uniform(0, min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** tries))
                self._cond.wait(delay)

    def send_one(self, path: Path) -> bool:
        """Send the first entry; True once it is gone (sent or refused), False if not now."""
        try:
            head, _, body = path.read_bytes().partition(b"\n")
            meta = json.loads(head)
            self._send(meta["run"], meta["key"], body, meta.get("op", BATCH))
        except Unreachable:
            return False
        except RunyardError as exc:
            self._reject(path, exc)
        except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file
            self._reject(path, exc)
        else:
            path.unlink(missing_ok=True)
            self.sent += 1
        with self._cond:
            if self._queue and self._queue[0] == path:  # (close() may have let go of it)
                self._queue.popleft()
            self._cond.notify_all()
        return True

    def _reject(self, path: Path, exc: Exception) -> None:
        self.rejected += 1
        log.warning("the runyard server %s refused a spooled entry (%s); kept in %s",
                    self.origin, exc, self.folder / "rejected")
        target = self.folder / "rejected"
        target.mkdir(exist_ok=True)
        os.replace(path, target / f"{path.parent.name}-{path.name}")

    # -- ending ----------------------------------------------------------------------------------
    def drain(self, timeout: float = DRAIN_S) -> bool:
        """Wait up to ``timeout`` seconds for every entry to be sent; whether they were."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._start()
                self._cond.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = DRAIN_S) -> int:
        """Drain for up to ``timeout`` seconds, stop the thread and let go of the folders (the
        batches left stay on disk for the next owner); how many were left."""
        self._deadline = time.monotonic() + timeout
        self.drain(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(MAX_DELAY_S + 5)
        with self._cond:
            left = len(self._queue)
            for owner, fd in self._held:
                if not any(owner.glob("*" + SUFFIX)):
                    _remove_folder(owner, fd)
                else:
                    os.close(fd)
            self._held, self._own, self._closing = [], None, False
            self._queue.clear()
        return left

    def _past_deadline(self) -> bool:
        return time.monotonic() >= getattr(self, "_deadline", 0.0)


def resend_all(timeout: float = 60.0) -> tuple[int, int]:
    """Resend the entries (batches and ends) that gone processes left for any server
    (``runyard sync``): how many were sent, and how many are still waiting (a server still
    away)."""
    from runyard.stores.credentials import token_for

    sent = left = 0
    for origin in spooled_servers():
        try:
            token = token_for(origin)
        except ConfigError as exc:  # (its batches wait for a login; the others go)
            waiting = sum(1 for p in server_folder(origin).glob("*/*" + SUFFIX)
                          if p.parent.name != "rejected")
            log.warning("cannot resend %d spooled batches to %s: %s", waiting, origin, exc)
            left += waiting
            continue
        client = HttpClient(origin, token, patience=2.0)
        spool = Spool(origin, partial(resend, client))
        try:
            if spool.adopt():
                left += spool.close(timeout)
                sent += spool.sent
        finally:
            client.close()
    return sent, left


def _lock(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove_folder(owner: Path, fd: int) -> None:
    """Remove an owner folder with no batches left (its lock file last, still held)."""
    try:
        for leftover in owner.iterdir():
            if leftover.name != "lock":
                leftover.unlink(missing_ok=True)
        (owner / "lock").unlink(missing_ok=True)
        owner.rmdir()
    except OSError:
        pass
    finally:
        os.close(fd)
