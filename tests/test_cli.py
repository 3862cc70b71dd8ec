"""The ``runyard`` command line, run for real: in-process through ``main`` (with click's stream
isolation), as a subprocess, and on a pseudo-terminal where a terminal matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from runyard.cli.main import main
from runyard.core.catalog import save_bytes
from runyard.core.context import open_context
from runyard.core.runlog import parse_since, run_log
from runyard.core.runs import create_run
from runyard.errors import ValidationError
from runyard.model import Attempt, Event, Metric, Status, Step
from runyard.stores import open_store


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(*args: str, stdin: str | None = None) -> Result:
    """Run ``main`` in this process with stdin, stdout and stderr of its own."""
    with CliRunner().isolation(input=stdin) as (out, err, _):
        code = main(list(args))
    return Result(code, out.getvalue().decode(), err.getvalue().decode())


def spawn(*args: str, cwd: Path, stdin: int | None = subprocess.DEVNULL) -> Result:
    """Run ``python -m runyard`` as a separate process, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    proc = subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        cwd=cwd,
        env=env,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result) -> None:
    assert result.code != 0
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert result.out == ""


def seed(url: str) -> str:
    """A finished run with steps, attempts, metrics, events and a real artifact; its id."""
    store = open_store(url)
    try:
        now = time.time()
        run = create_run(
            store,
            name="first-run",
            folder="/exp/a",
            tags=["x", "y"],
            status=Status.RUNNING,
            metadata={"lr": 0.1},
            parameters={"epochs": 3},
            description="seeded",
        )
        store.update_run(run.id, code={"commit": "0123456789abcdef", "branch": "main"})
        store.upsert_step(run.id, Step("train", created=now))
        store.upsert_attempt(run.id, "train", Attempt(1, Status.FAILED, now, now + 2, "oom"))
        store.upsert_attempt(run.id, "train", Attempt(2, Status.SUCCEEDED, now + 3, now + 9))
        store.append_metrics(
            run.id,
            [
                Metric("loss", 1.0, 0, now),
                Metric("loss", 0.25, 1, now),
                Metric("loss", 0.5, 2, now),
                Metric("acc", float("nan"), 2, now),
            ],
        )
        store.append_events(run.id, [Event(now + i, f"event {i}") for i in range(15)])
        save_bytes(store, open_context(url).blobs, run.id, b"weights", "model.bin")
        store.update_status(run.id, Status.SUCCEEDED)
        create_run(store, name="second-run", tags=["x"])
        return run.id
    finally:
        store.close()


@pytest.fixture
def default_store(isolated: Path) -> tuple[str, str]:
    """The default store (``./.runyard/runyard.db``), seeded; its URL and the first run's id."""
    url = f"sqlite://{isolated}/.runyard/runyard.db"
    return url, seed(url)


# -- list -----------------------------------------------------------------------------------
def test_list_is_newest_first_in_plain_columns(default_store: tuple[str, str]) -> None:
    result = invoke("run", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "status"]
    assert [line.split()[1] for line in lines[1:]] == ["second-run", "first-run"]
    assert result.err == ""


def test_list_json_and_filters(default_store: tuple[str, str]) -> None:
    _, run_id = default_store
    result = invoke("run", "list", "--json")
    runs = json.loads(result.out)
    assert [r["name"] for r in runs] == ["second-run", "first-run"]
    assert runs[1]["id"] == run_id and runs[1]["tags"] == ["x", "y"]
    picked = json.loads(invoke("run", "list", "--json", "--status", "succeeded").out)
    assert [r["name"] for r in picked] == ["first-run"]
    picked = json.loads(invoke("run", "list", "--json", "--tag", "x", "--tag", "y").out)
    assert [r["name"] for r in picked] == ["first-run"]
    picked = json.loads(invoke("run", "list", "--json", "--folder", "/exp").out)
    assert [r["name"] for r in picked] == ["first-run"]
    picked = json.loads(invoke("run", "list", "--json", "--name", "cond").out)
    assert [r["name"] for r in picked] == ["second-run"]
    assert json.loads(invoke("run", "list", "--json", "--since", "1h").out) == runs
    assert json.loads(invoke("run", "list", "--json", "--since", "2999-01-01").out) == []


def test_list_warns_on_stderr_when_more_runs_match_than_shown(isolated: Path) -> None:
    url = f"file://{isolated}/runs"
    store = open_store(url)
    for i in range(7):
        create_run(store, name=f"run-{i}")
    store.close()
    result = invoke("--store", url, "run", "list", "--limit", "5", "--json")
    assert result.code == 0
    assert [r["name"] for r in json.loads(result.out)] == [f"run-{i}" for i in range(6, 1, -1)]
    assert result.err.strip() == "warning: showing 5 of 7 runs; use --limit"
    everything = invoke("--store", url, "run", "list", "--limit", "0", "--json")
    assert len(json.loads(everything.out)) == 7 and everything.err == ""
    assert invoke("--store", url, "run", "list", "--limit", "7").err == ""


def test_list_sorts_by_a_field_or_parameter_and_turns_round(isolated: Path) -> None:
    url = f"file://{isolated}/runs"
    store = open_store(url)
    for name, lr in (("b", 0.1), ("a", 0.3), ("c", None), ("d", 0.2)):
        create_run(store, name=name, parameters={} if lr is None else {"lr": lr})
    store.close()

    def listed(*args: str) -> list[str]:
        result = invoke("--store", url, "run", "list", "--json", *args)
        assert result.code == 0, result.err
        return [r["name"] for r in json.loads(result.out)]

    assert listed() == ["d", "c", "a", "b"]
    assert listed("--reverse") == ["b", "a", "c", "d"]
    assert listed("--sort", "name") == ["a", "b", "c", "d"]
    assert listed("--sort", "name", "--reverse") == ["d", "c", "b", "a"]
    assert listed("--sort", "param:lr") == ["b", "d", "a", "c"]  # no value: last
    assert listed("--sort", "param:lr", "--reverse") == ["a", "d", "b", "c"]
    bad = invoke("--store", url, "run", "list", "--sort", "size")
    assert bad.code == 2 and "Traceback" not in bad.err
    assert bad.err.strip().startswith("error: cannot sort runs by 'size'")
    assert len(bad.err.strip().splitlines()) == 1


# -- show -----------------------------------------------------------------------------------
def test_show_json_is_the_whole_run_log(default_store: tuple[str, str]) -> None:
    _, run_id = default_store
    result = invoke("run", "show", "first-run", "--json", "--events", "3")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["schema"] == 1
    assert (doc["id"], doc["name"], doc["status"]) == (run_id, "first-run", "succeeded")
    assert doc["folder"] == "/exp/a" and doc["tags"] == ["x", "y"]
    assert doc["parameters"] == {"epochs": 3} and doc["metadata"] == {"lr": 0.1}
    assert doc["code"]["commit"] == "0123456789abcdef"
    assert doc["duration"] == pytest.approx(doc["ended"] - doc["started"])
    [step] = doc["steps"]
    assert step["name"] == "train" and step["status"] == "succeeded"
    assert [a["duration"] for a in step["attempts"]] == [pytest.approx(2), pytest.approx(6)]
    assert step["duration"] == pytest.approx(9)
    assert doc["metrics"]["loss"] == {
        "count": 3,
        "last": 0.5,
        "last_step": 2,
        "min": 0.25,
        "max": 1.0,
    }
    assert doc["metrics"]["acc"]["last"] == "NaN"  # strict JSON: no bare NaN
    [artifact] = doc["catalog"]
    assert (artifact["name"], artifact["size"], artifact["stage"]) == ("model.bin", 7, "put")
    assert doc["events"]["count"] == 15
    assert [e["message"] for e in doc["events"]["last"]] == ["event 12", "event 13", "event 14"]
    assert json.loads(invoke("run", "show", run_id, "--json").out)["name"] == "first-run"


def test_show_human_view(default_store: tuple[str, str]) -> None:
    result = invoke("run", "show", "first-run")
    assert result.code == 0, result.err
    out = result.out
    for text in (
        "first-run",
        "succeeded",
        "/exp/a",
        "x, y",
        "commit 0123456789ab on main",
        "epochs",
        "train",
        "oom",
        "loss",
        "model.bin",
        "events (15, last 10 shown)",
        "event 14",
    ):
        assert text in out, text
    assert "event 4\n" not in out


def test_run_log_function_matches_the_store(isolated: Path) -> None:
    url = f"chunked://{isolated}/c"
    run_id = seed(url)
    store = open_store(url)
    try:
        doc = run_log(store, store.get_run(run_id), events_tail=0)
    finally:
        store.close()
    assert doc["events"] == {"count": 15, "last": []}
    assert set(doc["metrics"]) == {"acc", "loss"}
    json.dumps(doc, allow_nan=False)


# -- rename and delete ----------------------------------------------------------------------
def test_rename(default_store: tuple[str, str]) -> None:
    _, run_id = default_store
    result = invoke("run", "rename", run_id, "renamed-run")
    assert result.code == 0 and result.out == ""
    assert "first-run -> renamed-run" in result.err
    assert json.loads(invoke("run", "show", "renamed-run", "--json").out)["id"] == run_id
    taken = invoke("run", "rename", "renamed-run", "second-run")
    assert_one_line_error(taken)
    assert taken.code == 4


def test_delete_with_yes(default_store: tuple[str, str]) -> None:
    result = invoke("run", "delete", "second-run", "--yes")
    assert result.code == 0 and "deleted run" in result.err
    names = [r["name"] for r in json.loads(invoke("run", "list", "--json").out)]
    assert names == ["first-run"]


def test_delete_without_yes_and_no_terminal_is_refused(default_store: tuple[str, str]) -> None:
    result = invoke("run", "delete", "second-run", stdin="y\n")
    assert_one_line_error(result)
    assert "pass --yes" in result.err
    assert len(json.loads(invoke("run", "list", "--json").out)) == 2


def test_delete_without_yes_in_a_subprocess_with_no_stdin(
    default_store: tuple[str, str], isolated: Path
) -> None:
    result = spawn("run", "delete", "second-run", cwd=isolated)
    assert_one_line_error(result)
    assert len(json.loads(invoke("run", "list", "--json").out)) == 2


# -- store ----------------------------------------------------------------------------------
def test_store_copy_between_file_stores_is_idempotent(isolated: Path) -> None:
    src, dst = f"file://{isolated}/src", f"file://{isolated}/dst"
    seed(src)
    first = invoke("store", "copy", src, dst, "--json")
    assert first.code == 0, first.err
    assert json.loads(first.out) == {
        "copied": 2,
        "updated": 0,
        "unchanged": 0,
        "blobs_copied": 1,
        "blobs_missing": 0,
        "surplus": [],
    }
    assert "copied 2 runs" in first.err.splitlines()[-1]
    again = invoke("store", "copy", src, dst)
    assert again.code == 0 and again.out == ""
    assert "copied 0 runs, updated 0, 2 unchanged; 0 blobs copied" in again.err
    src_runs = json.loads(invoke("--store", src, "run", "list", "--json").out)
    assert json.loads(invoke("--store", dst, "run", "list", "--json").out) == src_runs
    shown = json.loads(invoke("--store", dst, "run", "show", "first-run", "--json").out)
    assert shown["catalog"][0]["name"] == "model.bin"
    assert open_context(dst).blobs.exists(shown["catalog"][0]["hash"])


def test_store_info_follows_store_option_and_config(isolated: Path) -> None:
    info = json.loads(invoke("store", "info", "--json").out)
    assert info["store"] == f"sqlite://{isolated}/.runyard/runyard.db"
    assert info["blobs"] == str(isolated / ".runyard" / "blobs")
    (isolated / "runyard.yaml").write_text(
        "run_log_store:\n  type: file-system\n  config:\n    log_folder: logs\n"
    )
    info = json.loads(invoke("store", "info", "--json").out)
    assert info == {
        "store": f"file://{isolated}/logs",
        "type": "file",
        "blobs": str(isolated / "logs" / "blobs"),
    }
    explicit = invoke("--store", "chunked:///tmp/elsewhere", "store", "info")
    assert "chunked:///tmp/elsewhere" in explicit.out
    secret = invoke("--store", "postgresql://me:hunter2@db:5432/runs", "store", "info")
    assert "hunter2" not in secret.out and "me:***@db:5432" in secret.out


# -- the command line itself ----------------------------------------------------------------
def test_help_and_version_in_a_subprocess(isolated: Path) -> None:
    helped = spawn("--help", cwd=isolated)
    assert helped.code == 0 and "run" in helped.out and "store" in helped.out
    version = spawn("--version", cwd=isolated)
    assert version.code == 0 and version.out.startswith("runyard ")
    assert not (isolated / ".runyard").exists()  # help opens no store


def test_usage_error_is_one_line_with_exit_2(isolated: Path) -> None:
    result = invoke("run", "list", "--no-such-option")
    assert_one_line_error(result)
    assert result.code == 2 and "runyard run list --help" in result.err


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--store", "bogus://x", "run", "list"), 2, "unknown store URL"),
        (("run", "show", "no-such-run"), 3, "no run with id or name"),
        (("run", "rename", "first-run", "bad name!"), 2, "invalid run name"),
        (("run", "list", "--since", "last tuesday"), 2, "invalid time"),
        (("run", "list", "--status", "finished"), 2, "unknown status"),
        (("run", "list", "--folder", "nope"), 2, "invalid folder"),
    ],
)
def test_bad_input_gives_one_line_and_no_traceback(
    default_store: tuple[str, str], isolated: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    result = spawn(*args, cwd=isolated)
    assert_one_line_error(result)
    assert result.code == code and words in result.err


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("run_log_store:\n  type: no-such-store\n", "unknown run_log_store type"),
        ("run_log_store: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_config_file_gives_one_line(isolated: Path, config: str, words: str) -> None:
    (isolated / "runyard.yaml").write_text(config)
    result = spawn("run", "list", cwd=isolated)
    assert_one_line_error(result)
    assert result.code == 2 and words in result.err


def test_parse_since() -> None:
    now = 1_800_000_000.0
    assert parse_since("30m", now) == now - 1800
    assert parse_since("1h", now) == now - 3600
    assert parse_since("2d", now) == now - 2 * 86400
    assert parse_since("2026-11-01T10:00+00:00") == 1793527200.0
    assert parse_since("2026-11-01") < parse_since("2026-11-01T10:00")
    for bad in ("", "yesterday", "5 parsecs", "-1h", "2026-13-01"):
        with pytest.raises(ValidationError, match="invalid time"):
            parse_since(bad, now)


# -- on a terminal --------------------------------------------------------------------------
def on_terminal(args: list[str], cwd: Path, answer: bytes | None = None) -> Result:
    """Run ``python -m runyard`` on a pseudo-terminal; type ``answer`` at its first prompt."""
    pty = pytest.importorskip("pty")
    import select

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    env.update(COLUMNS="160", LINES="40")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runyard", *args],
        cwd=cwd,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if answer is not None and b"[y/N]" in seen:
            os.write(master, answer)
            answer = None
    os.close(master)
    return Result(proc.wait(timeout=60), seen.decode(errors="replace"), "")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_on_a_terminal_list_draws_a_table_and_delete_asks(
    default_store: tuple[str, str], isolated: Path
) -> None:
    table = on_terminal(["run", "list"], isolated)
    assert table.code == 0
    assert "first-run" in table.out and "second-run" in table.out
    declined = on_terminal(["run", "delete", "second-run"], isolated, answer=b"n\n")
    assert declined.code == 1 and "was not deleted" in declined.out
    accepted = on_terminal(["run", "delete", "second-run"], isolated, answer=b"y\n")
    assert accepted.code == 0 and "deleted run" in accepted.out
    names = [r["name"] for r in json.loads(invoke("run", "list", "--json").out)]
    assert names == ["first-run"]


def test_lazy_help_lines_match_the_commands() -> None:
    """``runyard --help`` shows each command's help line without importing it: keep them equal."""
    from runyard.cli.lazy import load
    from runyard.cli.main import COMMANDS
    from runyard.cli.run_all import RUN_COMMANDS

    for name, (path, line) in [*COMMANDS.items(), *RUN_COMMANDS.items()]:
        command = load(path)
        assert command.get_short_help_str(limit=200) == line, name
        assert command.name == name, path
