"""One contract suite for every runtime: in_process, process, and ray on a real local cluster."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.errors import RuntimeUnavailable
from runyard.runtimes import Runtime
from runyard.runtimes.in_process import InProcessRuntime
from runyard.runtimes.process import ProcessRuntime

RUNTIMES = ["in_process", "process", "ray"]


def square(x: int) -> int:
    return x * x


def fail(message: str) -> None:
    raise ValueError(message)


def rendezvous(mine: str, other: str) -> int:
    """Create ``mine`` and wait for ``other``: only finishes if both run at the same time."""
    Path(mine).touch()
    deadline = time.monotonic() + 60
    while not Path(other).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the other task never ran alongside this one")
        time.sleep(0.01)
    return os.getpid()


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    if request.param == "in_process":
        made: Runtime = InProcessRuntime(4)
    elif request.param == "process":
        made = ProcessRuntime(2)
    else:
        from runyard.runtimes.ray import RayRuntime

        made = RayRuntime(cluster=request.getfixturevalue("ray_cluster"))  # type: ignore[arg-type]
    with made:
        yield made


def test_submit_returns_a_future_with_the_result(runtime: Runtime) -> None:
    assert runtime.submit(square, 7).result(timeout=120) == 49
    futures = [runtime.submit(square, i) for i in range(20)]
    assert [f.result(timeout=120) for f in futures] == [i * i for i in range(20)]


def test_an_exception_reaches_the_future(runtime: Runtime) -> None:
    future = runtime.submit(fail, "boom")
    with pytest.raises(Exception, match="boom"):
        future.result(timeout=120)


def test_submit_then_calls_back_with_the_result_or_the_error(runtime: Runtime) -> None:
    got: list[tuple[object, BaseException | None]] = []
    both = threading.Event()

    def done(result: object, error: BaseException | None) -> None:
        got.append((result, error))
        if len(got) == 2:
            both.set()

    runtime.submit_then(square, (6,), done)
    runtime.submit_then(fail, ("bang",), done)
    assert both.wait(120)
    assert (36, None) in got
    errors = [error for _, error in got if error is not None]
    assert len(errors) == 1 and "bang" in str(errors[0])


def test_callables_submitted_from_callbacks_run_on(runtime: Runtime) -> None:
    """A chain where each step is submitted by the previous one's callback gets to its end."""
    finished: list[int] = []
    end = threading.Event()

    def step(value: int, error: BaseException | None) -> None:
        assert error is None
        if value >= 30:
            finished.append(value)
            end.set()
            return
        runtime.submit_then(square, (value + 1,), lambda v, e: step(int(v**0.5) + 1, e))
        runtime.submit(square, value).add_done_callback(lambda f: finished.append(-f.result()))

    step(0, None)
    assert end.wait(120)
    assert 30 in finished


def test_independent_callables_run_in_parallel(runtime: Runtime, tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    first, second = runtime.submit(rendezvous, a, b), runtime.submit(rendezvous, b, a)
    pids = {first.result(timeout=120), second.result(timeout=120)}
    if runtime.remote:
        assert len(pids) == 2 and os.getpid() not in pids


def held_until(marker: str) -> str:
    """Finish only once ``marker`` exists (at most a minute)."""
    deadline = time.monotonic() + 60
    while not Path(marker).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)
    return "released"


def test_a_call_is_answered_while_an_earlier_one_still_runs(runtime: Runtime,
                                                           tmp_path: Path) -> None:
    marker = tmp_path / "release"
    held = runtime.submit(held_until, str(marker))
    answers: list[int] = []
    quick = threading.Event()
    runtime.submit_then(square, (3,), lambda result, error: (answers.append(result),
                                                            quick.set()))
    assert quick.wait(50) and answers == [9]  # the held call cannot have ended yet
    assert not held.done()
    marker.touch()
    assert held.result(timeout=120) == "released"


def test_remote_runtimes_refuse_what_does_not_pickle(runtime: Runtime) -> None:
    lock = threading.Lock()
    if not runtime.remote:
        assert runtime.submit(lambda held: held.locked(), lock).result(timeout=30) is False
        return
    with pytest.raises(RuntimeUnavailable, match="do not pickle") as info:
        runtime.submit(square, lock)
    assert "\n" not in str(info.value)


def test_lambdas_travel_to_every_runtime(runtime: Runtime) -> None:
    offset = 5
    assert runtime.submit(lambda x: x + offset, 1).result(timeout=120) == 6


def test_submit_outside_the_lifecycle_is_refused(runtime: Runtime) -> None:
    runtime.shutdown()
    with pytest.raises(RuntimeUnavailable, match="shut down"):
        runtime.submit(square, 2)
    with pytest.raises(RuntimeUnavailable, match="shut down"):
        runtime.start()


def test_submit_before_start_is_refused() -> None:
    with pytest.raises(RuntimeUnavailable, match="start it"):
        InProcessRuntime().submit(square, 2)


def test_ray_cluster_is_found_again_by_its_recorded_address(ray_cluster: object) -> None:
    from runyard.runtimes.raycluster import LocalCluster

    cluster = ray_cluster
    assert isinstance(cluster, LocalCluster) and cluster.running()
    state = cluster.read_state()
    again = LocalCluster(cluster.state_file, cluster.port, num_cpus=2)
    assert again.ensure() == cluster.address
    assert again.read_state() == state  # reused, not started again
