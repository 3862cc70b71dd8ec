"""The agent and its callers trust only their equals.

The command line sends its environment and streams to an agent only if the socket's folder
and the socket are its own user's, the folder closed to others and not a link, and the process
listening is of its own user; anything else gets nothing, and the command runs in the caller.
The agent serves only a caller with its own user, groups, capabilities and namespaces; it
declines any other, which then runs its command itself. Most of these need root (to listen as
``nobody``, to enter new namespaces).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from commands_helpers import RUNYARD, environment, ok, start_agent
from runyard.cli import entry

ECHO = """\
name: echo
buffers: {inputs: [input], outputs: [output]}
command: ["bash", "-c", "inp=$(cat \\"$INPUT_PIPE\\"); \\
echo \\"$inp $GREETING\\" > \\"$OUTPUT_PIPE\\""]
"""
root_only = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                               reason="needs root and unshare")

# A listener that takes the socket's place: it binds as root (in folders ``nobody`` cannot
# enter), gives the socket to ``nobody`` if told, listens as root or as ``nobody``, and
# prints how many bytes each caller sent it.
LISTENER = """\
import os, socket, sys
path, chown, listen_as, uid = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
server.bind(path)
if chown:
    os.chown(path, uid, uid)
if listen_as == "nobody":
    os.setgid(uid); os.setuid(uid)
server.listen(4)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.settimeout(15)
    try:
        print("got", len(conn.recv(1 << 20)), flush=True)
    except OSError:
        print("got 0", flush=True)
    conn.close()
"""


def echo(cwd: Path, env: dict[str, str], *wrapper: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wrapper, RUNYARD, "run", "exec", "-c", "echo"], cwd=cwd,
                          env={**env, "GREETING": "hi"}, input="Paul", capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def codespec(tmp_path: Path) -> Path:
    (tmp_path / "echo.yml").write_text(ECHO)
    ok(tmp_path, "codespec", "create", "-f", "echo.yml")
    return tmp_path


@pytest.fixture
def served(codespec: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An agent of this test's own (its socket in the test's folder), with its log."""
    sock, log = codespec / "a.sock", codespec / "agent.log"
    proc = start_agent(sock, log)
    yield {**environment(), "RUNYARD_AGENT_SOCKET": str(sock)}, log
    proc.terminate()
    proc.wait(timeout=30)


def test_an_equal_caller_is_served(served: tuple[dict[str, str], Path], codespec: Path) -> None:
    env, log = served
    done = echo(codespec, env)
    assert done.returncode == 0 and done.stdout == "Paul hi\n", done.stderr
    assert "runs run exec -c echo" in log.read_text()
    assert "declined" not in log.read_text()


WRAPPERS = {
    "net namespace": ["unshare", "--net"],
    "uts namespace": ["unshare", "--uts"],
    "ipc namespace": ["unshare", "--ipc"],
    "mnt namespace": ["unshare", "--mount"],
    "cgroup namespace": ["unshare", "--cgroup"],
    "pid namespace": ["unshare", "--pid", "--fork"],
    "user namespace": ["unshare", "--user", "--map-root-user"],
    "Groups": ["setpriv", "--groups", "1,2", "--"],
    "CapPrm": ["setpriv", "--bounding-set", "-all", "--"],
}


@root_only
@pytest.mark.parametrize("differs", list(WRAPPERS))
def test_a_caller_that_is_not_the_agents_equal_is_declined_and_runs_its_command(
        served: tuple[dict[str, str], Path], codespec: Path, differs: str) -> None:
    env, log = served
    done = echo(codespec, env, *WRAPPERS[differs])
    assert done.returncode == 0 and done.stdout == "Paul hi\n", done.stderr
    text = log.read_text()
    assert f"declined a caller: its {differs} differs" in text, text
    assert "runs run exec" not in text


@root_only
def test_a_caller_in_another_root_is_declined_and_runs_its_command(codespec: Path) -> None:
    """An agent and a caller in one mount namespace, the caller chrooted into a bind mount of
    the same / (the same inode: only its place tells it apart)."""
    root, sock, log = codespec / "root", codespec / "r.sock", codespec / "agent.log"
    root.mkdir()
    script = (f"set -e; mount --rbind / {root}; {sys.executable} -m runyard.cli.agent {sock} "
              f"2>{log} & agent=$!; while [ ! -S {sock} ]; do sleep 0.05; done; "
              f"chroot {root} sh -c 'cd {codespec} && exec {RUNYARD} run exec -c echo'; "
              "kill $agent")
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env={**environment(), "RUNYARD_AGENT_SOCKET": str(sock), "GREETING": "hi"},
            input="Paul", capture_output=True, text=True, timeout=120)
    finally:
        agents(sock)
    assert done.returncode == 0 and done.stdout == "Paul hi\n", done.stderr
    assert "declined a caller: its root folder differs" in log.read_text(), log.read_text()


def test_a_caller_in_other_namespaces_gets_an_agent_of_its_own() -> None:
    """The default socket is keyed on what the agent compares: no agent that declines it."""
    here = entry.socket_path()
    there = subprocess.run(
        ["unshare", "--uts", sys.executable, "-c",
         "from runyard.cli import entry; print(entry.socket_path())"],
        env=environment(), capture_output=True, text=True, timeout=60)
    if there.returncode != 0:
        pytest.skip(f"cannot unshare here: {there.stderr.strip()}")
    assert there.stdout.strip() != here
    assert os.path.dirname(there.stdout.strip()) == os.path.dirname(here)


def listener(path: Path, *, chown: bool, listen_as: str) -> subprocess.Popen[str]:
    uid = pwd.getpwnam("nobody").pw_uid
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(path), "1" if chown else "0",
                             listen_as, str(uid)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"
    return proc


def folder(tmp: Path, setup: str) -> Path:
    """The socket's folder, as another user (or a careless one) may have left it."""
    nobody = pwd.getpwnam("nobody").pw_uid
    place = tmp / "sockets"
    place.mkdir(mode=0o700)
    if setup == "folder of another user":
        os.chown(place, nobody, nobody)
    elif setup == "folder others may enter":
        place.chmod(0o777)
    elif setup == "link to a folder":
        os.symlink(place, tmp / "link")
        return tmp / "link"
    return place


SETUPS = {  # what is wrong -> (the socket given to nobody, the listener listens as)
    "folder of another user": (True, "root"),
    "folder others may enter": (False, "root"),
    "link to a folder": (False, "root"),
    "socket of another user": (True, "root"),
    "listener of another user": (False, "nobody"),
}


@root_only
@pytest.mark.parametrize("setup", list(SETUPS))
def test_a_socket_that_is_not_the_callers_own_gets_nothing(codespec: Path, setup: str) -> None:
    sock = folder(codespec, setup) / "agent.sock"
    chown, listen_as = SETUPS[setup]
    fake = listener(sock, chown=chown, listen_as=listen_as)
    try:
        done = echo(codespec, {**environment(), "RUNYARD_AGENT_SOCKET": str(sock)})
    finally:
        fake.send_signal(signal.SIGKILL)
        out, _ = fake.communicate(timeout=30)
    assert done.returncode == 0 and done.stdout == "Paul hi\n", done.stderr
    assert all(line == "got 0" for line in out.splitlines()), out  # not a byte sent
    assert not agents(sock)  # and no agent started where it could not serve


@root_only
def test_the_default_socket_folder_of_another_user_gets_nothing(
        codespec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another user who made ``$TMPDIR/runyard-UID`` before this one listens in vain."""
    tmpdir = codespec / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    sock = Path(entry.socket_path())
    sock.parent.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(sock.parent, nobody, nobody)
    fake = listener(sock, chown=True, listen_as="nobody")
    try:
        done = echo(codespec, {**environment(), "TMPDIR": str(tmpdir)})
    finally:
        fake.send_signal(signal.SIGKILL)
        out, _ = fake.communicate(timeout=30)
    assert done.returncode == 0 and done.stdout == "Paul hi\n", done.stderr
    assert out == "", out  # not even a connection
    assert not agents(sock)


def agents(sock: Path) -> list[psutil.Process]:
    """Agents started for ``sock`` (stopped here: a test leaves none behind)."""
    found = [p for p in psutil.process_iter(["cmdline"]) if str(sock) in (p.info["cmdline"] or [])
             and "runyard.cli.agent" in (p.info["cmdline"] or [])]
    for proc in found:
        proc.terminate()
    return found
