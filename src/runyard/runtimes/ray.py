"""The ``ray`` runtime: callables run as Ray tasks, on a configured cluster or a local one.

Ray is imported only here, and only when a Ray runtime starts; without it the start raises
``MissingDependencyError`` naming ``pip install 'runyard[ray]'``.

With no address, a ``LocalCluster`` (``runtimes.raycluster``) is used: runyard's own cluster,
started on demand and kept for later runs. Nothing here ever runs ``ray stop`` or connects to
``auto``.

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
import os
import pickle
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from runyard.errors import MissingDependencyError, RuntimeUnavailable
from runyard.runtimes.base import Answer, RuntimeBase, call_pickled, pickled_call
from runyard.runtimes.raycluster import LocalCluster, ray_env
from runyard.runtimes.raywait import Waiter

T = TypeVar("T")
CONNECT_TRIES = 3
_connected: dict[str, Any] = {}  # address -> the remote function, while this process is connected


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None
    return ray


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
