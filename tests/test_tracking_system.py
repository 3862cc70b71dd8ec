"""Volume, system resources, code identity, and runs left open when the interpreter exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runyard import Run
from runyard.core import identity
from runyard.model import Status
from runyard.stores import RunStore, open_store
from runyard.tracking.gpu import Gpus
from tracking_helpers import FAST, start_script, wait_for

NAMES = [f"metric{i}" for i in range(10)]


def test_a_million_values_arrive_exactly_once_in_order(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/million.db"
    steps = 100_000
    with Run(url, **FAST) as run:
        run.init(name="million")
        for step in range(steps):
            run.log_metrics({name: step + i / 10 for i, name in enumerate(NAMES)}, step=step)
    store = open_store(url)
    everything = store.read_metrics(run.id)
    assert len(everything) == 1_000_000
    for i, name in enumerate(NAMES):
        series = [m for m in everything if m.name == name]
        assert [m.step for m in series] == list(range(steps))
        assert [m.value for m in series] == [step + i / 10 for step in range(steps)]
    assert sum(s.count for s in store.metric_summaries(run.id)) == 1_000_000


def test_system_metrics_cover_the_whole_process_tree(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/system.db"
    store = open_store(url)
    with Run(url, heartbeat_interval=0.1, resources_interval=0.05) as run:
        run.init()
        child = subprocess.Popen([sys.executable, "-c", "sum(range(3 * 10**7))"])
        child.wait(timeout=120)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            wait_for(lambda: max(_values(store, run, "system.processes"), default=0) >= 2,
                     what="a sample that sees the child process")
        finally:
            sleeper.kill()
            sleeper.wait()
    summary = store.get_run(run.id).resources
    assert summary["samples"] >= 1 and summary["peak_memory_mib"] > 1
    assert summary["cpu_seconds"] > 0.1  # the waited-for child's CPU counts
    names = {s.name for s in store.metric_summaries(run.id)}
    assert {"system.cpu_percent", "system.memory_mib", "system.processes"} <= names
    memory = [m.value for m in store.read_metrics(run.id, "system.memory_mib")]
    assert all(value > 1 for value in memory)


def test_gpu_metrics_appear_only_where_nvml_sees_a_gpu(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/gpu.db"
    with Run(url, heartbeat_interval=None, resources_interval=0.05) as run:
        run.init()
        store = open_store(url)
        wait_for(lambda: bool(_values(store, run, "system.processes")), what="a sample")
    gpu_names = {s.name for s in store.metric_summaries(run.id) if s.name.startswith("system.gpu")}
    gpus = Gpus.open()
    if gpus is None:  # no nvidia-ml-py, no driver or no device: nothing recorded, no error
        assert gpu_names == set()
    else:
        assert gpu_names == {f"system.gpu.{i}.{kind}" for i in range(len(gpus))
                             for kind in ("utilization_percent", "memory_mib")}


def test_resources_can_be_switched_off_and_the_summary_stays(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/off.db"
    with Run(url, **FAST) as run:
        run.init()
        sum(range(10**6))
    store = open_store(url)
    assert store.metric_summaries(run.id) == []
    summary = store.get_run(run.id).resources
    assert summary["samples"] == 0 and summary["peak_memory_mib"] > 1


def _values(store: RunStore, run: Run, name: str) -> list[float]:
    return [m.value for m in store.read_metrics(run.id, name)]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(folder: Path, remote: str) -> None:
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "config", "user.email", "t@example.com")
    _git(folder, "config", "user.name", "t")
    (folder / "train.py").write_text("print('hi')\n")
    _git(folder, "add", "train.py")
    _git(folder, "commit", "-q", "-m", "first")
    _git(folder, "remote", "add", "origin", remote)


def test_the_code_identity_is_recorded_from_git(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    make_repo(tmp_path / "clean", "https://user:s3cret@example.com/lab/clean.git")
    make_repo(tmp_path / "dirty", "git@example.com:lab/dirty.git")
    (tmp_path / "dirty" / "train.py").write_text("print('changed')\n")
    (tmp_path / "plain").mkdir()
    url = f"sqlite://{tmp_path}/code.db"
    codes = {}
    for name in ("clean", "dirty", "plain"):
        monkeypatch.chdir(tmp_path / name)
        with Run(url, **FAST) as run:
            run.init(name=name)
        codes[name] = open_store(url).get_run(run.id).code
    clean, dirty = codes["clean"], codes["dirty"]
    assert clean is not None and dirty is not None
    assert len(clean["commit"]) == 40 and clean["branch"] == "main" and clean["dirty"] is False
    assert clean["remote"] == "https://example.com/lab/clean.git"  # no credentials kept
    assert dirty["dirty"] is True and dirty["remote"] == "git@example.com:lab/dirty.git"
    assert codes["plain"] is None


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://tok3n@github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://u:p@host:8443/a", "https://host:8443/a"),
        ("ssh://git@host/a.git", "ssh://git@host/a.git"),
        ("git@host:a/b.git", "git@host:a/b.git"),
        ("https://host/a", "https://host/a"),
    ],
)
def test_remote_urls_lose_their_credentials(url: str, clean: str) -> None:
    assert identity.without_credentials(url) == clean


PACKAGES = """
import json
from importlib.metadata import distributions
from runyard.core import identity
expected = {}
for dist in distributions():
    if dist.metadata["Name"]:
        expected.setdefault(identity._normalised(dist.metadata["Name"]), dist.version)
print(json.dumps([identity.environment()["packages"], dict(sorted(expected.items()))]))
"""


def test_the_environment_lists_installed_packages_as_their_metadata_does() -> None:
    # in a process of its own: the list is made once per process, and a module imported since
    # (Ray puts its own third-party folder on sys.path) would change what is found
    import json

    done = subprocess.run([sys.executable, "-c", PACKAGES], capture_output=True, text=True,
                          check=True, timeout=120)
    packages, expected = json.loads(done.stdout)
    assert packages == expected
    assert "click" in packages and "runyard" in packages
    assert identity._normalised("Typing_Extensions") == "typing-extensions"


LEFT_OPEN = """
from runyard import Run
run = Run({url!r}, heartbeat_interval=None, resources_interval=None, flush_interval=30)
run.init(name={name!r})
for step in range(1000):
    run.log_metrics({{"loss": float(step)}}, step=step)
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "status", "reason"),
    [("pass", Status.SUCCEEDED, None),
     ("raise RuntimeError('fell over')", Status.FAILED, "RuntimeError: fell over")],
    ids=["normal-exit", "uncaught-error"],
)
def test_a_run_left_open_is_closed_at_exit_with_everything_written(
    tmp_path: Path, ending: str, status: Status, reason: str | None
) -> None:
    url = f"sqlite://{tmp_path}/exit.db"
    child = start_script(LEFT_OPEN.format(url=url, name="left-open", ending=ending), tmp_path)
    child.communicate(timeout=120)
    store = open_store(url)
    record = store.get_run_by_name("left-open")
    assert (record.status, record.status_reason) == (status, reason)
    assert [m.step for m in store.read_metrics(record.id)] == list(range(1000))
