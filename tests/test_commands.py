"""Command runs through the real command line: codespecs, buffers, run exec/create, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from commands_helpers import HELLO, environment, job_spec, ok, runyard, show, wait_status


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "hello.yml").write_text(HELLO)
    ok(tmp_path, "codespec", "create", "-f", "hello.yml")
    return tmp_path


def test_the_exact_hello_example(work: Path) -> None:
    done = subprocess.run(
        'echo "Paul" | runyard run exec --codespec hello > result.txt', shell=True, cwd=work,
        env=environment(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (work / "result.txt").read_text() == "Hello Paul\n"
    assert "succeeded" in done.stderr
    run_id = done.stderr.split()[1]
    doc = show(work, run_id)
    assert doc["kind"] == "command" and doc["status"] == "succeeded"
    assert doc["steps"][0]["attempts"][0]["outputs"] == {"exit_code": 0}
    assert "not used" in doc["metadata"]["image"]


def test_run_show_says_the_image_was_not_used(work: Path) -> None:
    done = runyard(work, "run", "exec", "-c", "hello", stdin="x\n")
    text = ok(work, "run", "show", done.stderr.split()[1])
    assert "ubuntu (not used: the local executor" in text
    assert "exit code 0" in text


def test_exec_with_an_inline_codespec_in_a_run_file(tmp_path: Path) -> None:
    (tmp_path / "run.yml").write_text(
        "job:\n  codespec:\n    buffers: {inputs: [input], outputs: [output]}\n"
        '    command: ["bash", "-c", "echo \\"Hello $(cat $INPUT_PIPE)\\" > $OUTPUT_PIPE"]\n'
        "  tags: {team: physics}\ntimeoutSeconds: 60\n")
    done = runyard(tmp_path, "run", "exec", "-f", "run.yml", "--tag", "try=1", stdin="Paul\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello Paul\n"
    doc = show(tmp_path, done.stderr.split()[1])
    assert set(doc["tags"]) == {"team=physics", "try=1"}
    assert doc["parameters"]["codespec"] == "inline"
    assert doc["parameters"]["timeout_s"] == 60


def test_buffers_created_written_and_read_around_run_create(work: Path) -> None:
    inp = ok(work, "buffer", "create", "--tag", "kind=input").strip()
    created = runyard(work, "run", "create", "-c", "hello", "--buffer", f"input={inp}")
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    assert "created buffer" in created.stderr
    ok(work, "buffer", "write", inp, stdin="Paul\n")
    out = show(work, run_id)["parameters"]["buffers"]["output"]
    assert ok(work, "buffer", "read", out) == "Hello Paul\n"
    assert wait_status(work, run_id, {"succeeded"})["status"] == "succeeded"
    listed = json.loads(ok(work, "buffer", "list", "--tag", "kind=input", "--json"))
    assert [b["id"] for b in listed] == [inp] and listed[0]["state"] == "complete"
    assert json.loads(ok(work, "buffer", "show", out, "--json"))["size"] == len("Hello Paul\n")


def test_buffers_are_written_once(work: Path) -> None:
    buf = ok(work, "buffer", "create").strip()
    ok(work, "buffer", "write", buf, stdin="a")
    again = runyard(work, "buffer", "write", buf, stdin="b")
    assert again.returncode != 0 and "already has data" in again.stderr


def test_codespec_versions(work: Path) -> None:
    same = runyard(work, "codespec", "create", "-f", "hello.yml")
    assert same.stdout.strip() == "hello/versions/1" and "unchanged" in same.stderr
    (work / "hello.yml").write_text(HELLO.replace("Hello", "Hi"))
    assert ok(work, "codespec", "create", "-f", "hello.yml").strip() == "hello/versions/2"
    assert ok(work, "run", "exec", "-c", "hello", stdin="Ann") == "Hi Ann\n"
    assert ok(work, "run", "exec", "-c", "hello/versions/1", stdin="Ann") == "Hello Ann\n"
    assert ok(work, "run", "exec", "-c", "hello", "--version", "1", stdin="Bo") == "Hello Bo\n"
    listed = json.loads(ok(work, "codespec", "list", "hello", "--json"))
    assert [v["version"] for v in listed] == [1, 2]
    assert json.loads(ok(work, "codespec", "show", "hello", "--json"))["version"] == 2


def test_logs_of_all_replicas_merged(tmp_path: Path) -> None:
    spec = job_spec(tmp_path, ["bash", "-c", 'echo "out $RUNYARD_REPLICA_INDEX of '
                               '$RUNYARD_REPLICA_COUNT"; echo "err $RUNYARD_REPLICA_INDEX" >&2'])
    done = runyard(tmp_path, "run", "exec", "-f", spec, "-r", "3")
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.split()[1]
    lines = ok(tmp_path, "run", "logs", run_id).splitlines()
    assert sorted(lines) == sorted([f"out {i} of 3" for i in range(3)] +
                                   [f"err {i}" for i in range(3)])
    assert len(ok(tmp_path, "run", "logs", run_id, "--tail", "2").splitlines()) == 2
    stamped = ok(tmp_path, "run", "logs", run_id, "--timestamps", "--since", "1h")
    assert all(line[:2] == "20" for line in stamped.splitlines())
    assert len(show(tmp_path, run_id)["steps"]) == 3


def test_replicas_outputs_are_joined_in_replica_order(tmp_path: Path) -> None:
    (tmp_path / "run.yml").write_text(
        "job:\n  replicas: 3\n  codespec:\n    buffers: {outputs: [output]}\n"
        '    command: ["bash", "-c", "sleep 0.$((3 - RUNYARD_REPLICA_INDEX)); '
        'echo part $RUNYARD_REPLICA_INDEX > $OUTPUT_PIPE"]\n')
    assert ok(tmp_path, "run", "exec", "-f", "run.yml") == "part 0\npart 1\npart 2\n"


def test_exec_streams_logs_to_stderr(tmp_path: Path) -> None:
    spec = job_spec(tmp_path, ["bash", "-c", "echo from-the-job"])
    done = runyard(tmp_path, "run", "exec", "-f", spec, "--logs")
    assert done.returncode == 0 and "from-the-job" in done.stderr


def bad_inputs(tmp: Path) -> dict[str, list[str]]:
    (tmp / "broken.yml").write_text("job: [unclosed\n")
    (tmp / "wrong.yml").write_text("job:\n  codespec: hello\n  colour: red\n")
    inp = ok(tmp, "buffer", "create").strip()
    return {
        "malformed YAML": ["run", "exec", "-f", "broken.yml"],
        "malformed codespec YAML": ["codespec", "create", "-f", "broken.yml"],
        "unknown key": ["run", "exec", "-f", "wrong.yml"],
        "unknown codespec": ["run", "exec", "-c", "nope"],
        "unknown version": ["run", "exec", "-c", "hello/versions/9"],
        "unknown version flag": ["run", "create", "-c", "hello", "--version", "7"],
        "unknown buffer": ["run", "create", "-c", "hello", "--buffer", "input=01NOSUCH"],
        "unknown buffer read": ["buffer", "read", "nope"],
        "buffer given twice": ["run", "create", "-c", "hello", "--buffer", f"input={inp}",
                               "--buffer", f"input={inp}"],
        "same buffer for two": ["run", "create", "-c", "hello", "--buffer", f"input={inp}",
                                "--buffer", f"output={inp}"],
        "unknown parameter": ["run", "create", "-c", "hello", "--buffer", f"nope={inp}"],
        "bad duration": ["run", "create", "-c", "hello", "--timeout", "soon"],
        "negative duration": ["run", "create", "-c", "hello", "--timeout", "-5s"],
        "bad replicas": ["run", "create", "-c", "hello", "-r", "0"],
        "bad executor": ["run", "create", "-c", "hello", "--executor", "cloud"],
        "docker": ["run", "create", "-c", "hello", "--executor", "docker"],
        "bad tag": ["buffer", "create", "--tag", "novalue"],
        "missing file": ["run", "exec", "-f", "absent.yml"],
        "no codespec": ["run", "exec"],
        "cancel unknown": ["run", "cancel", "no-such-run"],
    }


def test_bad_input_gives_one_line_and_a_non_zero_exit(work: Path) -> None:
    for label, args in bad_inputs(work).items():
        done = runyard(work, *args, stdin="")
        assert done.returncode != 0, label
        assert done.stderr.startswith("error: "), (label, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (label, done.stderr)
        assert "Traceback" not in done.stderr
    listed = json.loads(ok(work, "run", "list", "--json"))
    assert listed == [], "bad input must not leave runs behind"


def test_memory_store_is_refused(tmp_path: Path) -> None:
    done = runyard(tmp_path, "--store", "memory://x", "run", "exec", "-c", "hello")
    assert done.returncode != 0 and "other processes" in done.stderr
