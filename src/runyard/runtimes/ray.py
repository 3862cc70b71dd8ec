"""The ``ray`` runtime: callables run as Ray tasks, on a configured cluster or a local one.

Ray is imported only here, and only when a Ray runtime starts; without it the start raises
``MissingDependencyError`` naming ``pip install 'runyard[ray]'``.

With no address, a ``LocalCluster`` is used: a ``ray start --head --block`` child started on
demand, detached, with every port given explicitly (from one uncommon base port), token auth off
(``RAY_AUTH_MODE=disabled``), and a short temp dir. Its address and pid are recorded in a state
file, so later runs of the same configuration (from any process) find it and reuse it instead
of starting another; ``LocalCluster.stop`` ends it with SIGTERM and then stops, by pid, any of
its processes that linger. A recorded pid is signalled only while it is that cluster's own
``ray start`` (its temp dir on its command line), never a process that took the pid over.
Nothing here ever runs ``ray stop`` or connects to ``auto``.

One process keeps one connection to Ray (``ray.init`` takes a while): shutting a runtime down
leaves the connection for the next runtime on the same address; ``disconnect`` closes it.

Calls can be chained in Ray (``chains``): ``submit_after`` submits a call that Ray starts once
an earlier call has ended, handed that call's result, so a chain of tasks does not wait for a
round trip through the driver between two tasks (as Ray's own chains, given the previous task's
ObjectRef, do not); nobody is told of its end until ``answer_when`` asks for it, and ``drop``
cancels the ones that will not be wanted.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from runyard.errors import MissingDependencyError, RuntimeUnavailable
from runyard.fsio import atomic_write_text
from runyard.processes.detach import spawn_detached
from runyard.runtimes.base import Answer, RuntimeBase, call_pickled, pickled_call
from runyard.runtimes.raywait import Waiter

T = TypeVar("T")
DEFAULT_PORT = 29650  # GCS port of the default local cluster; other ports follow it
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
CONNECT_TRIES = 3
_connected: dict[str, Any] = {}  # address -> the remote function, while this process is connected


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


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


def disconnect(address: str | None = None) -> None:
    """Close this process's Ray connection (only if it is to ``address``, when given)."""
    if "ray" not in sys.modules or not _connected:
        return
    if address is not None and address not in _connected:
        return
    import ray

    _connected.clear()
    ray.shutdown()


def init_options(address: str) -> dict[str, Any]:
    """``ray.init`` settings: workers import what this process imports (its ``sys.path``).

    The path goes in the job's config (the driver path Ray gives every worker of the job
    before its first task; it inserts each entry at the front, so the list is reversed), not
    in a ``runtime_env``: a job with its own runtime env gets workers of its own, started
    through Ray's runtime-env agent when its first tasks arrive, while the cluster's idle
    workers serve it at once this way, as they serve a plain Ray driver.
    """
    from ray.job_config import JobConfig

    paths = [p for p in sys.path if p]
    options: dict[str, Any] = {"address": address, "log_to_driver": False,
                               "configure_logging": False}
    try:
        options["job_config"] = JobConfig(_py_driver_sys_path=paths[::-1])
    except TypeError:  # a Ray without it: the slower way
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
    if address.startswith("127.0.0.1:"):
        options["_node_ip_address"] = "127.0.0.1"
    return options


@contextlib.contextmanager
def _loopback_kept(address: str) -> Any:
    """While connecting to a loopback address, keep it on loopback.

    ``ray.init`` rewrites a ``127.0.0.1`` address to the address this machine routes to the
    internet from (a UDP "connect" to 8.8.8.8), which a sandbox or a CI runner may filter:
    the driver then waits for ten minutes on a cluster it could reach on loopback. Ray has no
    setting for this, so its one rewriting function is bypassed for the call.
    """
    from ray._private import services

    rewrite = getattr(services, "resolve_ip_for_localhost", None)
    if rewrite is None or not address.startswith("127.0.0.1:"):
        yield
        return
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = rewrite


def _init(ray: Any, address: str) -> None:
    """``ray.init``, tried ``CONNECT_TRIES`` times: a cluster that has just opened its port
    may not take connections yet (its node not registered while the machine is busy)."""
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            with _loopback_kept(address):
                ray.init(**init_options(address))
            return
        except Exception as exc:  # Ray raises many kinds; one line for all
            if attempt < CONNECT_TRIES and isinstance(exc, ConnectionError):
                ray.shutdown()  # whatever the failed attempt left behind
                time.sleep(1.0)
                continue
            detail = " ".join(str(exc).split())[:300]
            raise RuntimeUnavailable(f"cannot connect to Ray at {address}: {detail}") from exc


class RayRuntime(RuntimeBase):
    """Ray tasks on the cluster at ``address``, or on ``cluster`` (started on demand)."""

    name = "ray"
    remote = True
    chains = True  # submit_after, answer_when, drop

    def __init__(self, address: str | None = None, cluster: LocalCluster | None = None,
                 token: str | None = None) -> None:
        super().__init__()
        if address is None and cluster is None:
            raise RuntimeUnavailable("a ray runtime needs an address or a local cluster")
        self.address, self.cluster, self.token = address, cluster, token
        self._remote: Any = None
        self._waiter: Waiter | None = None

    def _start(self) -> None:
        ray = import_ray()
        address = self.address or self.cluster.ensure()  # type: ignore[union-attr]
        if address not in _connected:
            disconnect()
            os.environ.update({k: v for k, v in ray_env(self.token).items()
                               if k.startswith("RAY_AUTH")})
            _init(ray, address)
            _connected[address] = ray.remote(num_cpus=1, max_retries=0)(call_to_pickle)
        self._remote = _connected[address]
        self._waiter = Waiter(ray)

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()
        self._send(fn, args, future)
        return future

    def submit_then(self, fn: Callable[..., T], args: tuple[Any, ...],
                    done: Callable[[T | None, BaseException | None], None]) -> Any:
        """As ``submit``, answered by calling ``done`` on the waiter's thread (no Future);
        the call's handle (its ObjectRef), for ``submit_after``."""
        self._check_started()
        return self._send(fn, args, done)

    def _send(self, fn: Callable[..., Any], args: tuple[Any, ...], answer: Answer) -> Any:
        assert self._waiter is not None
        ref = self._remote.remote(pickled_call(fn, args, self.name))
        self._waiter.add(ref, answer)
        return ref

    def submit_after(self, fn: Callable[..., Any], args: tuple[Any, ...], after: Any) -> Any:
        """Submit ``fn(*args, result)``, run by Ray once the call whose handle is ``after``
        has ended (``result``: what it returned; if it raised, this call fails the same way
        without running). Nobody is told of its end until ``answer_when``; its handle."""
        self._check_started()
        return self._remote.remote(pickled_call(fn, args, self.name), after)

    def answer_when(self, handle: Any, done: Callable[[Any, BaseException | None], None]
                    ) -> None:
        """Call ``done`` once the call ``handle`` (from ``submit_after``) has ended."""
        self._check_started()
        assert self._waiter is not None
        self._waiter.add(handle, done)

    def drop(self, handles: list[Any]) -> None:
        """Cancel calls from ``submit_after`` that nobody will ask for: those still waiting
        do not run (one already running is interrupted)."""
        ray = import_ray()
        for handle in handles:
            with contextlib.suppress(Exception):  # ended already, or Ray is gone: no matter
                ray.cancel(handle)

    def _shutdown(self, wait: bool) -> None:
        self._remote = None
        if self._waiter is not None:
            self._waiter.stop()  # it ends once the calls still running have finished


def call_to_pickle(payload: bytes, *earlier: bytes) -> bytes:
    """Run a ``pickled_call`` in a Ray worker and return its result pickled: Ray passes bytes
    on as they are, while a Python object would go through its much slower serializer.
    ``earlier``: the results of the calls it was submitted after (``submit_after``), pickled
    so, given to the call as more arguments."""
    result = call_pickled(payload, tuple(pickle.loads(data) for data in earlier))
    try:
        return pickle.dumps(result, protocol=5)
    except Exception:  # a result only cloudpickle can send
        import cloudpickle

        return bytes(cloudpickle.dumps(result))
