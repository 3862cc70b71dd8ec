"""A job that replaces its named pipe never makes the supervisor read or write another file.

The jobs here swap ``$OUTPUT_PIPE`` or ``$INPUT_PIPE`` for a symbolic link to a host file (a
secret to read, a victim to overwrite), as soon as they start, with one replica and several;
a supervisor that opened the pipes by their path would copy the secret into the output buffer
or the input over the victim. The run must fail, saying the pipe was replaced.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from commands_helpers import RUNYARD, environment, ok, show

SECRET = "TOPSECRET-4f1c9a"
VICTIM = "victim: keep me as I am\n"
REPLACED = "replaced its named pipe"

# Perl starts in a millisecond: the swap comes before the supervisor's pumps start. The old
# pipe, kept as ``pipe.fifo``, is then used (briefly) as the job would, so a pump that holds
# the pipe it made gets its bytes, and one that followed the link would read or write it.
SWAP = ("my ($var, $target) = @ARGV; my $pipe = $ENV{$var}; "
        "rename $pipe, 'pipe.fifo' or die; symlink $target, $pipe or die; ")
OUTPUT_JOB = SWAP + ("alarm 3; open(my $out, '>', 'pipe.fifo') and print $out \"out\\n\"; "
                     "close $out; alarm 0; select(undef, undef, undef, 0.5);")
INPUT_JOB = SWAP + ("alarm 3; open(my $in, '<', 'pipe.fifo') and (my @lines = <$in>); "
                    "alarm 0; select(undef, undef, undef, 0.5);")


def codespec(tmp: Path, name: str, job: str, variable: str, target: Path,
             buffers: str) -> None:
    import yaml

    spec = {"name": name, "buffers": yaml.safe_load(buffers),
            "command": ["perl", "-e", job, variable, str(target)]}
    (tmp / f"{name}.yml").write_text(yaml.safe_dump(spec))
    ok(tmp, "codespec", "create", "-f", f"{name}.yml")


def run_exec(tmp: Path, name: str, replicas: int, executor: str,
             stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [RUNYARD, "run", "exec", "-c", name, "-r", str(replicas), "--executor", executor],
        cwd=tmp, env={**environment(), "RUNYARD_AGENT": "0"}, input=stdin,
        capture_output=True, timeout=120)


def executors() -> list[str]:
    return ["local", "sandbox"] if shutil.which("bwrap") else ["local"]


@pytest.mark.parametrize("executor", executors())
@pytest.mark.parametrize("replicas", [1, 4])
def test_an_output_pipe_swapped_for_a_link_to_a_secret_never_reads_it(
        tmp_path: Path, replicas: int, executor: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    codespec(tmp_path, "leak", OUTPUT_JOB, "OUTPUT_PIPE", secret, "{outputs: [output]}")
    done = run_exec(tmp_path, "leak", replicas, executor)
    err = done.stderr.decode()
    assert SECRET.encode() not in done.stdout
    assert done.returncode != 0, err
    assert f"{REPLACED} OUTPUT_PIPE with a symbolic link" in err
    run_id = err.split()[1]
    assert REPLACED in show(tmp_path, run_id)["status_reason"]


@pytest.mark.parametrize("executor", executors())
@pytest.mark.parametrize("replicas", [1, 4])
def test_an_input_pipe_swapped_for_a_link_to_a_victim_never_writes_it(
        tmp_path: Path, replicas: int, executor: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    codespec(tmp_path, "clobber", INPUT_JOB, "INPUT_PIPE", victim, "{inputs: [input]}")
    done = run_exec(tmp_path, "clobber", replicas, executor, stdin=b"overwritten!\n" * 1000)
    err = done.stderr.decode()
    assert victim.read_text() == VICTIM
    assert done.returncode != 0, err
    assert f"{REPLACED} INPUT_PIPE with a symbolic link" in err


def test_a_job_that_uses_its_pipes_and_removes_them_succeeds(tmp_path: Path) -> None:
    """Removing a used pipe is no harm: only a replacement fails the run."""
    job = 'cat "$INPUT_PIPE" > "$OUTPUT_PIPE"; rm "$INPUT_PIPE" "$OUTPUT_PIPE"'
    spec = {"name": "tidy", "buffers": {"inputs": ["input"], "outputs": ["output"]},
            "command": ["bash", "-c", job]}
    import yaml

    (tmp_path / "tidy.yml").write_text(yaml.safe_dump(spec))
    ok(tmp_path, "codespec", "create", "-f", "tidy.yml")
    done = run_exec(tmp_path, "tidy", 1, "local", stdin=b"hello\n")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"hello\n"


def test_a_pipe_handle_refuses_what_is_not_its_named_pipe(tmp_path: Path) -> None:
    from runyard.commands.pipes import PipeHandle

    (tmp_path / "file").write_text(SECRET)
    os.symlink(tmp_path / "file", tmp_path / "link")
    for name, kind in (("file", "a regular file"), ("link", "a symbolic link")):
        with pytest.raises(PermissionError, match=f"is {kind}, not the named pipe"):
            PipeHandle(tmp_path / name)
    os.mkfifo(tmp_path / "fifo", 0o600)
    handle = PipeHandle(tmp_path / "fifo")
    assert handle.replaced() is None
    os.replace(tmp_path / "link", tmp_path / "fifo")
    assert handle.replaced() == "a symbolic link"
    fd = handle.open(os.O_RDONLY | os.O_NONBLOCK)  # still the pipe, not the file
    assert os.read(fd, 100) == b""
    os.close(fd)
    handle.close()
