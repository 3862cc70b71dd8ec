"""Recorded runs: executed on a fresh copy of a version, isolated, outputs kept by hash and
mirrored read-only in runs/<name>/, logs streamed, resources, cancel, timeout, a killed
runyard, rename, bad input."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from record_helpers import cli_env, context, runyard, workspace
from runyard.core.liveness import refresh
from runyard.core.runs import create_run
from runyard.errors import ValidationError, VersionNotFound
from runyard.model import Kind, Stage, Status
from runyard.recording.record import record, rename
from runyard.recording.versions import create_version
from runyard.stores import RunFilter

WRITER = """
import os, pathlib
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/result.txt").write_text(open("data.txt").read().upper())
print("wrote result")
"""


def test_a_record_keeps_new_and_changed_files_and_mirrors_them(store_url: str,
                                                               tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": WRITER, "data.txt": "abc", "keep.txt": "same"})
    ctx = context(tmp_path, store_url)
    run = record(ctx, ws, ["main.py"])
    assert run.kind is Kind.RECORDED and run.status is Status.SUCCEEDED, run.status_reason
    catalog = {(a.name, a.stage) for a in ctx.store.list_artifacts(run.id)}
    assert ("out/result.txt", Stage.PUT) in catalog
    assert {("main.py", Stage.GET), ("data.txt", Stage.GET), ("keep.txt", Stage.GET)} <= catalog
    assert ("keep.txt", Stage.PUT) not in catalog and ("main.py", Stage.PUT) not in catalog
    mirror = ws / "runs" / run.name
    assert (mirror / "out" / "result.txt").read_text() == "ABC"
    assert (mirror / ".stdout").read_text() == "wrote result\n"
    assert (mirror / ".entrypoint").read_text() == "main.py\n"
    assert '"status": "succeeded"' in (mirror / "run.json").read_text()
    assert not os.stat(mirror / "out" / "result.txt").st_mode & 0o222
    assert run.internals["folder"] == f"runs/{run.name}" and run.internals["exit_code"] == 0


def test_changing_an_input_makes_it_an_output_and_the_version_is_unchanged(
        tmp_path: Path) -> None:
    script = "import os\nos.chmod('data.txt', 0o644)\nopen('data.txt', 'w').write('new')\n"
    ws = workspace(tmp_path, {"main.py": script, "data.txt": "old"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"])
    puts = [a.name for a in ctx.store.list_artifacts(run.id) if a.stage is Stage.PUT]
    assert puts == ["data.txt"] and (ws / "data.txt").read_text() == "old"


def test_inputs_are_read_only_in_the_work_folder(tmp_path: Path) -> None:
    script = "try:\n    open('data.txt', 'a').write('x')\nexcept OSError as e:\n" \
             "    print('refused', type(e).__name__)\n"
    ws = workspace(tmp_path, {"main.py": script, "data.txt": "old"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"])  # in the sandbox, with no capabilities, even as root
    assert (ws / "runs" / run.name / ".stdout").read_text() == "refused PermissionError\n"
    assert [a.name for a in ctx.store.list_artifacts(run.id) if a.stage is Stage.PUT] == []


def test_a_shell_script_and_a_command_are_entrypoints(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"run.sh": "echo from-shell > shell.txt\n"})
    ctx = context(tmp_path)
    shell = record(ctx, ws, ["run.sh"])
    assert (ws / "runs" / shell.name / "shell.txt").read_text() == "from-shell\n"
    command = record(ctx, ws, ["sh", "-c", "echo $1 > cmd.txt", "sh", "argument"])
    assert (ws / "runs" / command.name / "cmd.txt").read_text() == "argument\n"


def test_a_failing_entrypoint_fails_the_run_with_its_exit_code(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "import sys\nopen('partial.txt','w')\nsys.exit(7)\n"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"])
    assert run.status is Status.FAILED and run.status_reason == "non-zero exit code 7"
    assert (ws / "runs" / run.name / "partial.txt").exists()  # what it left is kept too
    done = runyard(["record", "main.py"], ctx.url, ws)
    assert done.returncode == 7 and "non-zero exit code 7" in done.stderr


def test_resources_of_the_whole_tree_are_recorded(tmp_path: Path) -> None:
    script = ("import subprocess, sys\n"
              "subprocess.run([sys.executable, '-c', 'b = bytearray(60 << 20); "
              "open(\"big\", \"wb\").write(b)'])\n")
    ws = workspace(tmp_path, {"main.py": script})
    run = record(context(tmp_path), ws, ["main.py"])
    res = run.resources
    assert res["cpu_user"] is not None and res["cpu_system"] is not None
    assert res["peak_memory"] >= 60 << 20  # the grandchild's bytearray
    assert res["write_bytes"] >= 60 << 20  # and what it wrote
    assert res["read_bytes"] > 0 and res["wall_s"] >= 0


def test_the_sandbox_cannot_write_outside_its_work_folder(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    script = f"""
import os
for path in ({str(target)!r}, {str(tmp_path / 'ws' / 'runs' / 'x')!r}, "/etc/escaped"):
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
"""
    ws = workspace(tmp_path, {"main.py": script})
    run = record(context(tmp_path), ws, ["main.py"])
    out = (ws / "runs" / run.name / ".stdout").read_text()
    assert "refused /etc/escaped" in out  # (the others land in its private /tmp at most)
    assert not target.exists() and not Path("/etc/escaped").exists()
    assert sorted(p.name for p in (ws / "runs").iterdir()) == [run.name]
    assert run.internals["outputs"] == 0


def _listener() -> tuple[socket.socket, list[bytes]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    got: list[bytes] = []

    def accept() -> None:
        with server:
            server.settimeout(30)
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                got.append(conn.recv(100))

    threading.Thread(target=accept, daemon=True).start()
    return server, got


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).sendall(b"hello")
    print("connected")
except OSError as exc:
    print("no network", type(exc).__name__)
"""


@pytest.mark.parametrize("network", [False, True])
def test_the_sandbox_reaches_127_0_0_1_only_with_network(tmp_path: Path, network: bool) -> None:
    server, got = _listener()
    port = server.getsockname()[1]
    ws = workspace(tmp_path, {"connect.py": CONNECT})
    run = record(context(tmp_path), ws, ["connect.py", str(port)], network=network)
    out = (ws / "runs" / run.name / ".stdout").read_text()
    if network:
        assert out == "connected\n"
        for _ in range(100):
            if got:
                break
            time.sleep(0.05)
        assert got == [b"hello"]
    else:
        assert out.startswith("no network") and got == []
    server.close()


SLOW = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"


def _wait_for(predicate, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_logs_stream_while_it_runs_and_a_cancel_stops_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"slow.py": SLOW})
    ctx = context(tmp_path)
    ended: list[object] = []
    worker = threading.Thread(target=lambda: ended.append(record(ctx, ws, ["slow.py"])))
    worker.start()
    reader = context(tmp_path / "reader", ctx.url).store

    def running_with_log():  # type: ignore[no-untyped-def]
        runs = reader.list_runs()
        runs = [r for r in runs if r.kind is Kind.RECORDED]
        if runs and [line.text for line in reader.read_logs(runs[0].id)] == ["started"]:
            return runs[0]
        return None

    run = _wait_for(running_with_log, "the first log line while it runs")
    assert run.status is Status.RUNNING
    reader.update_status(run.id, Status.CANCELING, "asked by the test")
    worker.join(30)
    final = ended[0]
    assert final.status is Status.CANCELED  # type: ignore[attr-defined]
    assert (ws / "runs" / run.name / ".stdout").read_text() == "started\n"


def test_a_timeout_fails_the_run(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"slow.py": SLOW})
    run = record(context(tmp_path), ws, ["slow.py"], timeout=0.5)
    assert run.status is Status.FAILED and run.status_reason == "timed out after 0.5s"


def _record_command(tmp_path: Path, url: str, through_agent: bool) -> tuple[list[str],
                                                                            dict[str, str]]:
    """``runyard record`` in a fresh interpreter, or handed to an agent of this test's own
    (started by a first record, as a user's first command starts one)."""
    if not through_agent:
        return [sys.executable, "-m", "runyard", "record"], cli_env(url)
    socket_path = tmp_path / "agent" / "agent.sock"
    env = cli_env(url, RUNYARD_AGENT_SOCKET=str(socket_path))
    command = [str(Path(sys.executable).parent / "runyard"), "record"]
    subprocess.run([*command, "sh", "-c", "true"], cwd=tmp_path / "ws", env=env, check=True,
                   capture_output=True)
    _wait_for(socket_path.exists, "the agent")
    return command, env


@pytest.mark.parametrize("through_agent", [False, True], ids=["no-agent", "agent"])
def test_killing_runyard_leaves_the_run_lost_and_no_runs_folder(tmp_path: Path,
                                                                through_agent: bool) -> None:
    ws = workspace(tmp_path, {"slow.py": "import os, time\nprint(os.getpid(), flush=True)\n"
                                         "time.sleep(60)\n"})
    ctx = context(tmp_path)
    command, env = _record_command(tmp_path, ctx.url, through_agent)
    before = {p.name for p in (ws / "runs").iterdir()} if (ws / "runs").exists() else set()
    proc = subprocess.Popen([*command, "slow.py"], cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the job runs
    run = _wait_for(lambda: [r for r in ctx.store.list_runs(RunFilter(kind=Kind.RECORDED))
                             if r.status is Status.RUNNING], "the recorded run")[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lost = _wait_for(lambda: refresh(ctx.store, ctx.store.get_run(run.id)).status
                     is Status.LOST, "the run to be lost")
    assert lost
    after = {p.name for p in (ws / "runs").iterdir()} if (ws / "runs").exists() else set()
    assert after == before  # nothing half made, not even a temporary folder
    again = record(ctx, ws, ["sh", "-c", "true"])  # the next record still works
    assert again.status is Status.SUCCEEDED


def test_renaming_a_recorded_run_renames_its_runs_folder(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": WRITER, "data.txt": "abc"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"], name="first-try")
    renamed = rename(ctx, run, "second-try")
    assert renamed.internals["folder"] == "runs/second-try"
    assert not (ws / "runs" / "first-try").exists()
    assert (ws / "runs" / "second-try" / "out" / "result.txt").read_text() == "ABC"
    done = runyard(["run", "rename", "second-try", "third-try"], ctx.url, ws)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (ws / "runs").iterdir()) == ["third-try"]


def test_a_rename_never_moves_a_folder_its_run_did_not_record(tmp_path: Path) -> None:
    """Internals are data (a client of the server sets them): a recorded run whose internals
    name another run's folder, or a folder without its ``run.json``, is renamed in the store
    only."""
    ws = workspace(tmp_path, {"main.py": WRITER, "data.txt": "abc"})
    ctx = context(tmp_path)
    real = record(ctx, ws, ["main.py"], name="the-real-one")
    (ws / "runs" / "plain").mkdir()
    for name, folder in (("borrower", "runs/the-real-one"), ("planted", "runs/plain")):
        fake = create_run(ctx.store, name=name, kind=Kind.RECORDED, status=Status.RUNNING,
                          internals={"workspace": str(ws), "folder": folder})
        renamed = rename(ctx, fake, f"{name}-2")
        assert renamed.name == f"{name}-2" and renamed.internals["folder"] == folder
    assert sorted(p.name for p in (ws / "runs").iterdir()) == ["plain", "the-real-one"]
    assert rename(ctx, real, "still-real").internals["folder"] == "runs/still-real"
    assert sorted(p.name for p in (ws / "runs").iterdir()) == ["plain", "still-real"]


def test_a_missing_entrypoint_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": ""})
    ctx = context(tmp_path)
    with pytest.raises(ValidationError, match=r"'nope\.py' is not a file of the workspace"):
        record(ctx, ws, ["nope.py"])
    assert ctx.store.list_runs() == []
    done = runyard(["record", "scripts/nope.sh"], ctx.url, ws)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: entrypoint 'scripts/nope.sh' is not a file")


def test_an_unknown_command_fails_in_one_line(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {})
    done = runyard(["record", "no-such-command-here"], context(tmp_path).url, ws)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "neither a file of version" in done.stderr


def test_an_unknown_version_is_refused(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": ""})
    ctx = context(tmp_path)
    with pytest.raises(VersionNotFound):
        record(ctx, ws, ["main.py"], version="no-such-version")
    done = runyard(["record", "--version", "no-such-version", "main.py"], ctx.url, ws)
    assert done.returncode == 3 and done.stderr.count("\n") == 1
    assert "no version 'no-such-version'" in done.stderr


def test_a_failing_environment_build_fails_the_run_with_the_builders_lines(
        tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "", "requirements.txt": "no-such-pkg-runyard==1\n"})
    ctx = context(tmp_path)
    done = runyard(["record", "main.py"], ctx.url, ws, UV_OFFLINE="1",
                   UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    assert done.returncode == 1 and done.stderr.count("\n") >= 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the environment did not build") and "no-such-pkg" in error
    run = next(r for r in ctx.store.list_runs() if r.kind is Kind.RECORDED)
    assert run.status is Status.FAILED and "did not build" in (run.status_reason or "")
    assert any(line.stream == "build" for line in ctx.store.read_logs(run.id))
    assert not (ws / "runs").exists()


def test_a_record_on_a_given_version_uses_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "print(open('data.txt').read())", "data.txt": "v1"})
    ctx = context(tmp_path)
    version = create_version(ctx, ws)
    (ws / "data.txt").write_text("v2")
    run = record(ctx, ws, ["main.py"], version=version.name)
    assert run.internals["version"] == version.id
    assert (ws / "runs" / run.name / ".stdout").read_text() == "v1\n"
    assert stat.S_IMODE(os.stat(ws / "runs" / run.name).st_mode) == 0o555


def test_run_show_tells_what_the_environment_did_not_honour(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"apt.txt": "curl\n", "environment.yml": "dependencies: [numpy]\n"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["sh", "-c", "true"])
    assert run.environment["not_honoured"] == [
        "environment.yml: conda packages numpy not installed (conda is not used; only the "
        "pip: part is)", "apt.txt: system packages not installed (no apt in a recorded run)"]
    shown = runyard(["run", "show", run.name], ctx.url, ws)
    assert shown.returncode == 0, shown.stderr
    assert "not honoured:\n  environment.yml: conda packages numpy" in shown.stdout
    assert "  apt.txt: system packages not installed" in shown.stdout
    assert f"python    {run.environment['python']}" in shown.stdout
    done = runyard(["record", "sh", "-c", "true"], ctx.url, ws)
    assert "warning: not honoured: apt.txt: system packages" in done.stderr


def test_the_tree_is_sampled_into_system_metrics_while_it_runs(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"main.py": "import time\ntime.sleep(2.5)\n"})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"])
    names = {m.name for m in ctx.store.read_metrics(run.id)}
    assert names == {"system.cpu_percent", "system.memory_mib", "system.processes"}
    memory = ctx.store.read_metrics(run.id, "system.memory_mib")
    assert memory and all(m.value > 0 for m in memory)
    assert [m.step for m in memory] == list(range(len(memory)))


def test_links_and_named_pipes_the_job_leaves_are_noted_not_followed(tmp_path: Path) -> None:
    script = ("import os\nos.mkfifo('pipe')\nos.symlink('/etc/passwd', 'link')\n"
              "os.mkdir('d')\nos.symlink('/etc', 'd/dirlink')\nopen('real.txt', 'w').write('x')\n")
    ws = workspace(tmp_path, {"main.py": script})
    ctx = context(tmp_path)
    run = record(ctx, ws, ["main.py"])  # (a pipe opened for reading would have hung it)
    assert run.status is Status.SUCCEEDED
    puts = [a.name for a in ctx.store.list_artifacts(run.id) if a.stage is Stage.PUT]
    assert puts == ["real.txt"]
    assert sorted(run.internals["skipped"]) == ["d/dirlink: a link (not kept)",
                                                "link: a link (not kept)",
                                                "pipe: not a regular file"]
    mirror = ws / "runs" / run.name
    assert sorted(p.name for p in mirror.iterdir() if not p.name.startswith(".")) == [
        "real.txt", "run.json"]


def test_an_absolute_program_of_this_machine_is_a_command(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {})
    run = record(context(tmp_path), ws, ["/bin/sh", "-c", "echo ok > ok.txt"])
    assert (ws / "runs" / run.name / "ok.txt").read_text() == "ok\n"


def test_deleting_the_version_removes_runs_folders_wherever_they_were_recorded(
        tmp_path: Path) -> None:
    from runyard.recording.versions import delete_version

    ws = workspace(tmp_path, {"main.py": WRITER, "data.txt": "abc"})
    ctx = context(tmp_path)
    version = create_version(ctx, ws)
    here = record(ctx, ws, ["main.py"], version=version.id)
    other = tmp_path / "elsewhere"
    other.mkdir()
    there = record(ctx, other, ["main.py"], version=version.id)
    assert (other / "runs" / there.name / "out" / "result.txt").exists()
    delete_version(ctx, version.id)
    assert not (ws / "runs" / here.name).exists()
    assert not (other / "runs" / there.name).exists()
