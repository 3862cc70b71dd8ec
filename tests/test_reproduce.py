"""Reproducing a recorded run: a new recorded run of the same version and entrypoint whose
origin is the first, compared file by file; also for a run imported from an export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from record_helpers import context, runyard, workspace
from runyard.errors import ValidationError
from runyard.model import Kind, Status
from runyard.recording.record import record
from runyard.recording.reproduce import compare, reproduce

DETERMINISTIC = """
import hashlib, pathlib
data = pathlib.Path("data.txt").read_bytes()
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/digest.txt").write_text(hashlib.sha256(data).hexdigest())
pathlib.Path("out/upper.txt").write_bytes(data.upper())
"""
CLOCK = DETERMINISTIC + """
import time
pathlib.Path("out/when.txt").write_text(repr(time.time_ns()))
"""


def test_a_deterministic_run_reproduces_with_every_output_identical(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": DETERMINISTIC, "data.txt": "abc"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    report = reproduce(ctx, first.name)
    assert report.files == {"out/digest.txt": "identical", "out/upper.txt": "identical"}
    assert not report.differs and report.same_environment
    assert report.run.origin == first.id and report.run.kind is Kind.RECORDED
    assert report.run.internals["version"] == first.internals["version"]
    assert (ws / "runs" / report.run.name / "out" / "upper.txt").read_text() == "ABC"


def test_a_run_writing_the_time_differs_in_exactly_that_file(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": CLOCK, "data.txt": "abc"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    done = runyard(["reproduce", first.name, "--json"], ctx.url, ws)
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["files"] == {"out/digest.txt": "identical", "out/upper.txt": "identical",
                            "out/when.txt": "differ"}
    assert doc["identical"] is False and doc["original"]["id"] == first.id


def test_the_command_line_lists_each_file_and_exits_zero_when_identical(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": DETERMINISTIC, "data.txt": "abc"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    done = runyard(["reproduce", first.id], ctx.url, ws)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["identical  out/digest.txt", "identical  out/upper.txt"]
    assert "reproduces run " + first.name in done.stderr


def test_missing_and_new_outputs_are_told_apart() -> None:
    before = {"a": "1" * 64, "b": "2" * 64, "c": "3" * 64}
    after = {"a": "1" * 64, "b": "9" * 64, "d": "4" * 64}
    assert compare(before, after) == {"a": "identical", "b": "differ", "c": "missing",
                                      "d": "new"}


def test_a_run_that_now_writes_other_files_reports_missing_and_new(tmp_path: Path) -> None:
    seen = tmp_path / "seen"  # outside the workspace: the local executor sees it
    script = (f"import os\nname = 'second.txt' if os.path.exists({str(seen)!r}) else "
              "'first.txt'\nopen(name, 'w').write('x')\n")
    ws = workspace(tmp_path, {"main.py": script})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"], executor="local")
    seen.write_text("")
    report = reproduce(ctx, first.id)
    assert report.files == {"first.txt": "missing", "second.txt": "new"}
    assert report.run.internals["executor"] == "local"


def test_only_recorded_runs_can_be_reproduced(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": ""})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    with pytest.raises(ValidationError, match="only recorded runs can be reproduced"):
        reproduce(ctx, first.internals["version"])
    done = runyard(["reproduce", "no-such-run"], ctx.url, ws)
    assert done.returncode == 3 and done.stderr.count("\n") == 1


def test_a_failed_run_reproduces_as_failed(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "import sys\nsys.exit(4)\n"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    report = reproduce(ctx, first.id)
    assert report.run.status is Status.FAILED and not report.differs


def test_a_run_imported_from_an_export_reproduces(tmp_path: Path) -> None:
    from runyard.recording.exports import export_version, import_bundle

    ws = workspace(tmp_path / "a", {"main.py": DETERMINISTIC, "data.txt": "abc"})
    source = context(tmp_path / "a")
    first = record(source, ws, ["main.py"])
    bundle = export_version(source, first.internals["version"], tmp_path / "out.zip")
    target = context(tmp_path / "b")
    import_bundle(target, bundle)
    elsewhere = workspace(tmp_path / "b", {})
    report = reproduce(target, first.id, workspace=elsewhere)
    assert report.files == {"out/digest.txt": "identical", "out/upper.txt": "identical"}
    assert not report.differs
    assert (elsewhere / "runs" / report.run.name / "out" / "digest.txt").exists()


def test_a_reproduction_installs_the_first_runs_lock_when_its_environment_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    script = "import six\nopen('v.txt', 'w').write(six.__version__)\n"
    ws = workspace(tmp_path, {"main.py": script, "requirements.txt": "six\n"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    shutil.rmtree(ctx.blob_root.parent / "envs")  # a reviewer's machine has no cache
    report = reproduce(ctx, first.id)
    assert report.files == {"v.txt": "identical"} and report.same_environment
    assert report.run.environment["lock"] == first.environment["lock"]
    assert report.run.internals["env"] != first.internals["env"]  # built from the lock


def test_a_run_importing_its_own_modules_leaves_no_bytecode_to_differ(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "import helper\nhelper.write()\n",
                              "helper.py": "def write():\n    open('out.txt', 'w').write('x')\n"})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    report = reproduce(ctx, first.id)
    assert report.files == {"out.txt": "identical"} and not report.differs


def test_a_sandboxed_run_writing_its_working_directory_reproduces(tmp_path: Path) -> None:
    script = "import os\nopen('where.txt', 'w').write(os.getcwd() + os.environ['HOME'])\n"
    ws = workspace(tmp_path, {"main.py": script})
    ctx = context(tmp_path)
    first = record(ctx, ws, ["main.py"])
    report = reproduce(ctx, first.id)
    assert report.files == {"where.txt": "identical"}
    assert (ws / "runs" / first.name / "where.txt").read_text() == "/runyard/work" * 2
