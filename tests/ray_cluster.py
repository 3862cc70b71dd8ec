"""A real local Ray cluster for the tests that need one, started once per session.

It is started the way the ``ray`` runtime starts its own (``ray start --head --block`` as a
detached child, explicit uncommon ports, ``RAY_AUTH_MODE=disabled``, a short temp dir) and
stopped by this fixture: SIGTERM to that child, then its lingering agents by pid. Never
``ray stop``, never ``address="auto"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY_TEST_PORT = 47650


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    pytest.importorskip("ray")
    from runyard.runtimes.raycluster import LocalCluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    state = Path(tmp_path_factory.mktemp("ray")) / "cluster.json"
    # all Ray tests share one xdist worker (conftest); a port per worker guards against clashes
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    port = RAY_TEST_PORT + 300 * (int(worker) if worker.isdigit() else 0)
    cluster = LocalCluster(state, port, num_cpus=2)
    cluster.ensure()
    try:
        yield cluster
    finally:
        cluster.stop()
