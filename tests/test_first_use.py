"""The first use stays cheap (issue 16) and loses nothing: importing ``Run`` or the workflow DSL
brings only what it needs, and every run of a loop still records its code, environment, owner
and resources. Each import is checked in a fresh interpreter, through ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runyard.core import identity

THIRD_PARTY = ("psutil", "yaml", "coolname", "cloudpickle", "filelock", "ray", "psycopg")


def _fresh(code: str, cwd: Path | None = None) -> object:
    """What ``code`` prints as JSON, run in a new interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, check=True, env={**os.environ, "RUNYARD_OFFLINE": ""})
    return json.loads(done.stdout)


def test_importing_run_brings_the_standard_library_alone() -> None:
    loaded = _fresh("import sys, json; from runyard import Run; "
                    "print(json.dumps(sorted(sys.modules)))")
    assert isinstance(loaded, list)
    assert [m for m in loaded if m.startswith("runyard")] == [
        "runyard", "runyard.tracking", "runyard.tracking.run"]
    assert not {*THIRD_PARTY, "sqlite3", "logging", "subprocess", "typing"} & set(loaded)


def test_importing_the_dsl_leaves_runs_stores_and_runtimes_for_later() -> None:
    found = _fresh(
        "import sys, json\n"
        "from runyard import task, workflow\n"
        "@task\ndef one(x): return x\n"
        "@workflow\ndef flow(): return one(1)\n"
        "before = sorted(sys.modules)\n"
        "import runyard.engine.workflow\n"
        "from runyard.engine import workflow as again, WorkflowRun, RuntimeConfiguration\n"
        "print(json.dumps([before, again is workflow, WorkflowRun.__name__,\n"
        "                  RuntimeConfiguration.__name__]))")
    assert isinstance(found, list)
    before, same, *names = found
    heavy = ("runyard.stores", "runyard.model", "runyard.core", "runyard.runtimes",
             "runyard.engine.run", "runyard.engine.config")
    assert not [m for m in before if m.startswith(heavy)]
    assert not {*THIRD_PARTY, "sqlite3", "logging", "typing"} & set(before)
    assert same is True and names == ["WorkflowRun", "RuntimeConfiguration"]


LOOP = """
import json, sys
from runyard import Run, open_store
url = "sqlite://" + sys.argv[1] + "/loop.db"
ids = []
for i in range(3):
    with Run(url, heartbeat_interval=None, resources_interval=None) as run:
        run.init(tags=["a", "b", "c"], metadata={"i": i, "lr": 0.1, "k": "v", "n": 2, "x": 1})
        run.log_metrics({"loss": 0.5}, step=0)
    ids.append(run.id)
store = open_store(url)
runs = [store.get_run(i) for i in ids]
print(json.dumps({"psutil": "psutil" in sys.modules, "runs": [
    {"status": r.status.value, "code": r.code, "packages": sorted(r.environment["packages"]),
     "python": r.environment["python"], "owner": r.owner is not None, "tags": sorted(r.tags),
     "metadata": r.metadata, "resources": r.resources,
     "metrics": len(store.read_metrics(r.id))} for r in runs]}))
"""


def test_every_run_of_a_loop_records_code_environment_and_resources(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _repo(repo, ("origin", "https://tok@example.com/lab/loop.git"))
    found = _fresh(LOOP.replace("sys.argv[1]", repr(str(tmp_path))), cwd=repo)
    assert isinstance(found, dict)
    assert found["psutil"] is False  # runs that never sample measure without it
    for i, run in enumerate(found["runs"]):
        assert run["status"] == "succeeded" and run["owner"] is True
        assert len(run["code"]["commit"]) == 40 and run["code"]["branch"] == "main"
        assert run["code"]["remote"] == "https://example.com/lab/loop.git"
        assert "pytest" in run["packages"]
        assert run["python"] == ".".join(map(str, sys.version_info[:3]))
        assert run["tags"] == ["a", "b", "c"] and run["metadata"]["i"] == i
        assert run["metrics"] == 1
        assert set(run["resources"]) == {"cpu_seconds", "peak_memory_mib", "samples"}
        assert run["resources"]["peak_memory_mib"] > 1 and run["resources"]["samples"] == 0


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _repo(folder: Path, *remotes: tuple[str, str]) -> None:
    folder.mkdir()
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q",
         "--allow-empty", "-m", "first")
    for name, url in remotes:
        _git(folder, "remote", "add", name, url)


def test_the_remote_is_the_upstream_s_then_origin_then_the_first(tmp_path: Path) -> None:
    _repo(tmp_path / "up", ("origin", "https://example.com/o.git"),
          ("lab/eu", "git@example.com:lab/eu.git"), ("lab", "https://example.com/lab.git"))
    _git(tmp_path / "up", "config", "branch.main.remote", "lab/eu")
    _git(tmp_path / "up", "config", "branch.main.merge", "refs/heads/main")
    _repo(tmp_path / "origin", ("origin", "https://u:pw@example.com/o.git"),
          ("alpha", "https://example.com/a.git"))
    _repo(tmp_path / "other", ("zeta", "https://example.com/z.git"),
          ("beta", "https://example.com/b.git"))
    _repo(tmp_path / "none")
    remotes = {name: (identity.code_identity(tmp_path / name) or {}).get("remote")
               for name in ("up", "origin", "other", "none")}
    assert remotes == {"up": "git@example.com:lab/eu.git", "origin": "https://example.com/o.git",
                       "other": "https://example.com/b.git", "none": None}


FORKED = """
import os, sys
from runyard import Run, open_store
url = "sqlite://" + sys.argv[1] + "/fork.db"
for i in range(3):  # the parent's writer threads are kept for its next runs
    with Run(url, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name=f"parent-{i}")
        run.log_metrics({"loss": 1.0})
pid = os.fork()
if pid == 0:  # the kept threads are not in the child: its run gets a writer of its own
    with Run(url, heartbeat_interval=None, resources_interval=None) as run:
        run.init(name="child")
        run.log_metrics({"loss": 2.0})
    os._exit(0)
_, status = os.waitpid(pid, 0)
store = open_store(url)
child = store.get_run_by_name("child")
print(status, child.status.value, [m.value for m in store.read_metrics(child.id)])
"""


def test_a_forked_child_writes_its_own_runs_after_the_parent_s(tmp_path: Path) -> None:
    code = FORKED.replace("sys.argv[1]", repr(str(tmp_path)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split() == ["0", "succeeded", "[2.0]"]
