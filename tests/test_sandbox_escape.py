"""Escapes from the sandbox executor, each tried by a real job in real bubblewrap.

runyard runs as root here (as in containers and CI), which is when a sandbox without a user
namespace keeps almost every capability. Each test runs a job through ``run exec --executor
sandbox`` that tries one way out and prints what happened; the test reads the job's log.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from commands_helpers import environment, job_spec, ok, runyard

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

HANDLE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint), ("type", ctypes.c_int), ("data", ctypes.c_ubyte * 128)]
handle, mount_id = Handle(128, 0), ctypes.c_int()
named = libc.name_to_handle_at(-100, b"/etc/hostname", ctypes.byref(handle),
                               ctypes.byref(mount_id), 0)
print("named", named, ctypes.get_errno())
mount_fd = os.open("/etc", os.O_RDONLY)
fd = libc.open_by_handle_at(mount_fd, ctypes.byref(handle), os.O_RDONLY)
print("opened", fd, ctypes.get_errno())
"""


def sandboxed(tmp: Path, script: str, python: bool = False) -> list[str]:
    """Run ``script`` (bash, or Python with ``python``) in the sandbox; its log lines."""
    command = [sys.executable, "-c", script] if python else ["bash", "-c", script]
    done = runyard(tmp, "run", "exec", "--executor", "sandbox", "-f", job_spec(tmp, command))
    assert done.returncode == 0, done.stderr
    return ok(tmp, "run", "logs", done.stderr.split()[1]).splitlines()


def test_the_job_has_no_capabilities(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status")
    caps = dict(line.split(":\t") for line in lines)
    assert set(caps) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}, lines
    assert all(int(value, 16) == 0 for value in caps.values()), caps


def test_open_by_handle_at_is_refused(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, HANDLE, python=True)
    opened = next(line for line in lines if line.startswith("opened")).split()
    assert opened[1] == "-1" and int(opened[2]) == 1, lines  # EPERM


def test_mknod_is_refused(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "mknod ./mem c 1 1 2>&1 && echo made; ls -l ./mem 2>&1; true")
    assert "made" not in lines, lines
    assert any("Operation not permitted" in line for line in lines), lines


def test_mount_is_refused(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "mkdir m; mount -t tmpfs none m 2>&1 && echo mounted; "
                                "mount --bind / m 2>&1 && echo bound; true")
    assert not {"mounted", "bound"} & set(lines), lines


def test_no_new_user_namespace_to_regain_capabilities(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "unshare -r -m true 2>&1 && echo unshared; true")
    assert "unshared" not in lines, lines


def test_files_the_job_writes_belong_to_the_caller(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "echo hi > made; pwd")
    made = Path(lines[-1]) / "made"
    assert made.stat().st_uid == os.getuid() and made.stat().st_gid == os.getgid()


@pytest.mark.skipif(os.geteuid() != 0, reason="another host user is needed: runs as root")
def test_a_setuid_file_left_by_the_job_gives_no_privilege(tmp_path: Path) -> None:
    lines = sandboxed(tmp_path, "cp /usr/bin/id ./suid-id && chmod 4755 ./suid-id && "
                                "chmod 0777 . && pwd")
    work = Path(lines[-1])
    left = work / "suid-id"
    assert left.stat().st_uid == 0 and left.stat().st_mode & stat.S_ISUID  # it is there...
    assert stat.S_IMODE(work.parent.stat().st_mode) == 0o700  # ...out of anyone else's reach
    tried = subprocess.run(["runuser", "-u", "nobody", "--", str(left), "-u"],
                           capture_output=True, text=True)
    assert tried.returncode != 0 and tried.stdout.strip() != "0", tried
    assert "Permission denied" in tried.stderr


def test_a_python_environment_under_tmp_runs_in_the_sandbox(tmp_path: Path) -> None:
    """runyard installed in a venv under /tmp (as CI checks it out): its jobs see that venv
    although the sandbox has a private /tmp."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "runyard-here.pth").write_text("\n".join(p for p in sys.path if p) + "\n")
    python = str(venv / "bin" / "python")
    spec = job_spec(tmp_path, [python, "-c", "import sys; print('prefix', sys.prefix)"])
    done = subprocess.run([python, "-m", "runyard", "run", "exec", "--executor", "sandbox",
                           "-f", spec], cwd=tmp_path, env={**environment(), "RUNYARD_AGENT": "0"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = ok(tmp_path, "run", "logs", done.stderr.split()[1]).splitlines()
    assert f"prefix {venv}" in lines, lines
