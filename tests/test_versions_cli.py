"""``runyard version …`` through the real ``runyard`` program: data on stdout, status on stderr,
bad input as one ``error:`` line with a non-zero exit, deletion only with confirmation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNYARD = str(Path(sys.executable).parent / "runyard")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace (runyard.yaml) whose store is its own ``.runyard/`` (the default home)."""
    folder = tmp_path / "ws"
    (folder / "src").mkdir(parents=True)
    (folder / "runyard.yaml").write_text("{}\n")
    (folder / "src" / "a.py").write_text("print(1)\n")
    (folder / ".runyard").mkdir()
    return folder


def runyard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    clean.update({"RUNYARD_AGENT": "0", "RUNYARD_CONFIG_HOME": str(cwd / "config")})
    return subprocess.run([RUNYARD, *args], cwd=cwd, env=clean, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], *words: str, code: int) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and result.returncode == code, (line, result.returncode)
    for word in words:
        assert word in line
    assert result.stdout == ""
    return line


def test_create_list_show_and_diff_from_a_subfolder_of_the_workspace(ws: Path) -> None:
    here = ws / "src"
    assert ok(runyard(here, "version", "create", "--name", "one", "-m", "first")) == "one\n"
    (ws / "src" / "a.py").write_text("print(2)\n")
    (ws / "new.txt").write_text("new")
    created = json.loads(ok(runyard(here, "version", "create", "--json")))
    assert created["status"] == "succeeded" and created["files"] == 3
    listed = json.loads(ok(runyard(here, "version", "list", "--json")))
    assert [v["name"] for v in listed] == [created["name"], "one"]
    shown = json.loads(ok(runyard(here, "version", "show", "one", "--json")))
    assert shown["message"] == "first" and sorted(shown["files"]) == ["runyard.yaml", "src/a.py"]
    assert shown["workspace"] == str(ws.resolve())
    changes = json.loads(ok(runyard(here, "version", "diff", "one", created["name"], "--json")))
    assert changes == {"added": ["new.txt"], "removed": [], "changed": ["src/a.py"],
                       "mode_changed": []}
    assert "version" in ok(runyard(here, "run", "list", "--kind", "version"))


def test_restore_writes_into_a_new_folder_and_refuses_a_file_or_a_full_folder(
        ws: Path, tmp_path: Path) -> None:
    ok(runyard(ws, "version", "create", "--name", "r"))
    dest = tmp_path / "restored"
    assert ok(runyard(ws, "version", "restore", "r", str(dest))) == f"{dest}\n"
    assert (dest / "src" / "a.py").read_text() == "print(1)\n"
    one_line_error(runyard(ws, "version", "restore", "r", str(dest)), "not empty", "--force",
                   code=4)
    one_line_error(runyard(ws, "version", "restore", "r", str(dest / "runyard.yaml")),
                   "not a folder", code=2)
    ok(runyard(ws, "version", "restore", "r", str(dest), "--force"))


def test_bad_input_is_one_line_and_a_non_zero_exit(ws: Path, tmp_path: Path) -> None:
    one_line_error(runyard(ws, "version", "show", "nope"), "no version 'nope'", code=3)
    one_line_error(runyard(ws, "version", "restore", "nope", str(tmp_path / "x")),
                   "no version", code=3)
    one_line_error(runyard(ws, "version", "create", "--workspace", str(tmp_path / "missing")),
                   "does not exist", code=3)
    one_line_error(runyard(ws, "version", "diff", "nope", "other"), "no version", code=3)
    one_line_error(runyard(ws, "version", "delete", "nope", "--yes"), "no version", code=3)


def test_delete_asks_first_and_removes_the_version_that_run_delete_refuses(ws: Path) -> None:
    ok(runyard(ws, "version", "create", "--name", "gone"))
    one_line_error(runyard(ws, "run", "delete", "gone", "--yes"),
                   "runyard version delete gone", code=4)
    one_line_error(runyard(ws, "version", "delete", "gone"), "not a terminal", "--yes", code=1)
    assert "gone" in ok(runyard(ws, "version", "list"))
    report = json.loads(ok(runyard(ws, "version", "delete", "gone", "--yes", "--json")))
    assert report["name"] == "gone"
    assert json.loads(ok(runyard(ws, "version", "list", "--json"))) == []


def test_a_bad_runyardignore_line_is_one_line_error(ws: Path) -> None:
    (ws / ".runyardignore").write_text("*.log\n!\n")
    one_line_error(runyard(ws, "version", "create"), ".runyardignore", "Invalid git pattern",
                   code=2)
    assert json.loads(ok(runyard(ws, "version", "list", "--json"))) == []
