"""``runyard export`` and ``runyard import`` as a user runs them: real recorded runs, real
processes, one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bagit
import pytest

from export_helpers import rewrite_zip, validate_crate, version_with_runs
from runyard.core.context import open_context

SRC = str(Path(__file__).resolve().parents[1] / "src")
SCRIPT = "mkdir -p out\nsort data.txt > out/sorted.txt\necho sorted\n"


def runyard(*args: str, store: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``runyard ARGS`` against ``store`` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(RUNYARD_STORE=store, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0], lines[0]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite://{tmp_path}/a/runyard.db", f"sqlite://{tmp_path}/b/runyard.db"


def test_recorded_runs_exported_imported_and_reproduced_elsewhere(
        tmp_path: Path, stores: tuple[str, str]) -> None:
    here, there = stores
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "runyard.yaml").write_text("")
    (ws / "run.sh").write_text(SCRIPT)
    (ws / "data.txt").write_text("b\nc\na\n")
    assert runyard("version", "create", "--name", "v1", store=here, cwd=ws).returncode == 0
    for name in ("first", "second"):
        made = runyard("record", "--version", "v1", "--name", name, "--no-env", "sh", "run.sh",
                       store=here, cwd=ws)
        assert made.returncode == 0, made.stderr
    out = tmp_path / "v1.zip"
    exported = runyard("export", "v1", "-o", str(out), store=here, cwd=ws)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == str(out)
    assert "with 2 recorded run(s)" in exported.stderr
    bag = tmp_path / "bag"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(bag)
    bagit.Bag(str(bag)).validate()
    assert (bag / "data" / "runs" / "first" / "out" / "sorted.txt").read_text() == "a\nb\nc\n"
    assert validate_crate(bag / "data") == []

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    imported = runyard("import", str(out), "--json", store=there, cwd=elsewhere)
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["created"] == 3 and report["version"]["name"] == "v1"
    again = runyard("import", str(out), store=there, cwd=elsewhere)
    assert again.returncode == 0 and "nothing changed" in again.stderr

    (elsewhere / "runyard.yaml").write_text("")
    redo = runyard("reproduce", "first", "--json", store=there, cwd=elsewhere)
    assert redo.returncode == 0, redo.stderr
    compared = json.loads(redo.stdout)
    assert compared["identical"] is True and compared["run"]["status"] == "succeeded"
    assert compared["files"] == {"out/sorted.txt": "identical"}


def test_export_to_an_existing_path_is_one_line_and_leaves_it(tmp_path: Path,
                                                               stores: tuple[str, str]) -> None:
    here, _ = stores
    version_with_runs(open_context(here), tmp_path, runs=1)
    out = tmp_path / "taken.zip"
    out.write_text("keep me")
    result = runyard("export", "paper-v1", "-o", str(out), store=here, cwd=tmp_path)
    assert_one_line_error(result, "already exists")
    assert out.read_text() == "keep me"


def test_export_of_an_unknown_version_is_one_line(tmp_path: Path,
                                                  stores: tuple[str, str]) -> None:
    result = runyard("export", "no-such", "-o", str(tmp_path / "x.zip"), store=stores[0],
                     cwd=tmp_path)
    assert_one_line_error(result, "no version 'no-such'")
    assert not (tmp_path / "x.zip").exists()


def test_import_of_a_tampered_zip_is_one_line_and_imports_nothing(
        tmp_path: Path, stores: tuple[str, str]) -> None:
    here, there = stores
    version_with_runs(open_context(here), tmp_path, runs=2)
    out = tmp_path / "v.zip"
    assert runyard("export", "paper-v1", "-o", str(out), store=here, cwd=tmp_path
                   ).returncode == 0
    bad = tmp_path / "bad.zip"
    rewrite_zip(out, bad, {"data/runs/run-0/out/count.txt": b"999 tampered\n"})
    result = runyard("import", str(bad), store=there, cwd=tmp_path)
    assert_one_line_error(result, "nothing was imported")
    listed = runyard("run", "list", "--json", store=there, cwd=tmp_path)
    assert json.loads(listed.stdout or "[]") == []


def test_import_of_a_missing_file_is_one_line(tmp_path: Path, stores: tuple[str, str]) -> None:
    result = runyard("import", str(tmp_path / "nope.zip"), store=stores[1], cwd=tmp_path)
    assert_one_line_error(result, "no file")
