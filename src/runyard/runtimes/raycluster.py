"""Runyard's local Ray cluster: a ``ray start --head --block`` child, started on demand.

It is started detached, with every port given explicitly (from one uncommon base port), token
auth off (``RAY_AUTH_MODE=disabled``), a short temp dir, and its node on loopback (Ray's
single-node mode keeps ``127.0.0.1``). It counts as started once ``ray start`` says its node is
up; starts are one at a time per user on the machine. Its address and pid are recorded in a
state file, so later runs of the same configuration (from any process) find it and reuse it
instead of starting another; ``LocalCluster.stop`` ends it with SIGTERM and then stops, by
pid, any of its processes that linger. A recorded pid is signalled only while it is that
cluster's own ``ray start`` (its temp dir on its command line), never a process that took the
pid over. Nothing here ever runs ``ray stop``. Ray itself is not imported here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.errors import RuntimeUnavailable
from runyard.fsio import atomic_write_text
from runyard.processes.detach import spawn_detached

DEFAULT_PORT = 29650  # GCS port of the default local cluster; other ports follow it
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def ray_env(token: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if token:
        env["RAY_AUTH_TOKEN"] = token
    else:
        env.setdefault("RAY_AUTH_MODE", "disabled")
    return env



@dataclass(frozen=True)
class LocalCluster:
    """A local head node on ``port`` (its other ports: ``port+2``… and ``port+100``…)."""

    state_file: Path
    port: int = DEFAULT_PORT
    num_cpus: int | None = None
    object_store_memory: int = 200 * 2**20

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self, temp_dir: str) -> list[str]:
        p = self.port
        ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        argv = [ray_cli, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                "--port", str(p),
                "--node-manager-port", str(p + 2), "--object-manager-port", str(p + 3),
                "--dashboard-agent-listen-port", str(p + 4),
                "--dashboard-agent-grpc-port", str(p + 5), "--runtime-env-agent-port", str(p + 6),
                "--metrics-export-port", str(p + 7), "--min-worker-port", str(p + 100),
                "--max-worker-port", str(p + 199), "--include-dashboard=false",
                "--disable-usage-stats", "--temp-dir", temp_dir,
                "--object-store-memory", str(self.object_store_memory)]
        if self.num_cpus is not None:
            argv += ["--num-cpus", str(self.num_cpus)]
        return argv

    def read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    @classmethod
    def of_state(cls, state_file: Path) -> LocalCluster | None:
        """The cluster a state file records (``None`` if it records none)."""
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            port = int(str(state["address"]).rpartition(":")[2])
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return cls(state_file, port)

    def running(self) -> bool:
        """Whether the recorded cluster process is alive and its GCS port answers."""
        state = self.read_state()
        if not state or state.get("address") != self.address:
            return False
        return _ours(state) and _port_open(self.port)

    def ensure(self) -> str:
        """The address of the running cluster, started now if it is not running."""
        from filelock import FileLock

        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.state_file) + ".lock"):
            if not self.running():
                self._start()
        return self.address

    def _start(self) -> None:
        """Start the head, one start at a time on this machine (for this user): two heads
        starting in the same seconds have made one of them time out registering its node.
        A start whose head dies before it is ready is tried once more."""
        from filelock import FileLock

        lock = Path(tempfile.gettempdir()) / f"runyard-ray-start-{os.getuid()}.lock"
        with FileLock(str(lock)):
            try:
                self._start_once()
            except RuntimeUnavailable:
                self._start_once()

    def _start_once(self) -> None:
        if _port_open(self.port):
            raise RuntimeUnavailable(
                f"port {self.port} is taken by something that is not this configuration's Ray "
                "cluster; configure another port or an address"
            )
        temp_dir = tempfile.mkdtemp(prefix=f"ry{self.port}-", dir="/tmp")
        log = self.state_file.with_suffix(".log")
        # ``ray start`` turns ``--node-ip-address 127.0.0.1`` into the machine's outward
        # address unless Ray thinks it runs on a single-node platform: keep it on loopback.
        env = {**ray_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        try:
            before = log.stat().st_size  # (the log is appended to: only this start's lines)
        except OSError:
            before = 0
        pid = spawn_detached(self.argv(temp_dir), log, env=env)
        state = {"address": self.address, "pid": pid, "temp_dir": temp_dir,
                 "started": time.time()}
        _write_json(self.state_file, state)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_port_open(self.port) and _started(log, before)):  # the node, not the GCS
            if not _pid_alive(pid) or time.monotonic() > deadline:
                self.stop()
                raise RuntimeUnavailable(f"the local Ray cluster did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> bool:
        """Stop the recorded cluster: SIGTERM, then SIGKILL for what lingers. True if it ran."""
        state = self.read_state()
        if not state:
            return False
        from runyard.runtimes.ray import disconnect

        disconnect(self.address)
        pid, temp_dir = int(state.get("pid", 0)), str(state.get("temp_dir", ""))
        ran = _ours(state)
        if ran:
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, STOP_TIMEOUT_S)
        kill_lingering(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return ran


def kill_lingering(temp_dir: str) -> int:
    """SIGKILL, by pid, the processes still using ``temp_dir`` (agents outlive the head)."""
    import psutil

    if not temp_dir:
        return 0
    killed = 0
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if temp_dir in cmdline and proc.pid != os.getpid():
            try:
                proc.kill()
                killed += 1
            except psutil.Error:
                pass
    return killed


def _ours(state: dict[str, Any]) -> bool:
    """Whether the state's pid is alive and still the ``ray start`` of its temp dir."""
    import psutil

    pid, temp_dir = int(state.get("pid") or 0), str(state.get("temp_dir") or "")
    if not temp_dir or not _pid_alive(pid):
        return False
    try:
        return temp_dir in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data))


def _pid_alive(pid: int) -> bool:
    import psutil

    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def _started(log: Path, offset: int) -> bool:
    """Whether ``ray start`` has said, past ``offset`` of its log, that its node is up (it
    prints this once the node has registered; a GCS port that answers is not enough: the
    node may still time out)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            return b"Ray runtime started" in handle.read()
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
