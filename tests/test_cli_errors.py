"""What a new user types wrong, or an adversary on purpose, through the real ``runyard`` program.

Each mistake must end in one line on stderr (``error: …``), a non-zero exit and no traceback:
numbers too large or negative, a config file that is not UTF-8 or is nested 100,000 deep, a
workflow module that does not compile, a name with a trailing newline. ``--store`` works after
the subcommand too, and CSV output survives names with commas, quotes and unicode.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from runyard import Run
from runyard.cli.main import cli
from runyard.cli.params import MAX_COUNT, Count
from runyard.core.runs import create_run
from runyard.errors import ValidationError
from runyard.model import Event, LogLine, Metric, Status
from runyard.model import validate as check
from runyard.stores import open_store

RUNYARD = str(Path(sys.executable).parent / "runyard")  # the installed program, as users run it
HUGE = str(10**30)
DEEP_YAML = "[" * 100_000
CODESPEC = "name: echo\ncommand: [echo, hi]\n"


def runyard(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the ``runyard`` program in ``cwd`` with no runyard settings but ``env``; no agent,
    so no process outlives the test."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    clean.pop("PYTHONPATH", None)
    clean.update({"RUNYARD_AGENT": "0", "RUNYARD_CONFIG_HOME": str(cwd / "config"), **env})
    return subprocess.run([RUNYARD, *args], cwd=cwd, env=clean, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[str], *words: str, code: int = 2) -> str:
    """The error line, after checking it is the only line, with exit ``code`` and no output."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert result.returncode == code, (result.returncode, lines[0])
    assert result.stdout == ""
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# -- numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [HUGE, "-1"])
@pytest.mark.parametrize(
    "args",
    [
        ("run", "list", "--limit"),
        ("run", "logs", "some-run", "--tail"),
        ("run", "show", "some-run", "--events"),
        ("run", "exec", "-c", "echo", "--version"),
        ("run", "exec", "-c", "echo", "--replicas"),
        ("run", "create", "-c", "echo", "--version"),
        ("buffer", "list", "--limit"),
        ("config", "save", "big", "--runtime", "process", "--max-workers"),
    ],
)
def test_numbers_out_of_range_are_one_line_usage_errors(
    tmp_path: Path, args: tuple[str, ...], value: str
) -> None:
    line = one_line_error(runyard(tmp_path, *args, value), "Invalid value for")
    assert "out of range" in line or "not a whole number" in line
    assert not (tmp_path / "config").exists()  # nothing was saved either


def test_the_largest_count_works_on_every_store(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("a memory store lives in one process: the command line cannot open it")
    store = open_store(store_url)
    try:
        run = create_run(store, name="counted", status=Status.RUNNING)
        store.append_logs(run.id, [LogLine(100.0 + i, f"line {i}") for i in range(3)])
        store.append_events(run.id, [Event(100.0, "started")])
    finally:
        store.close()
    top = str(MAX_COUNT)
    for args in (("run", "list", "--limit", top), ("run", "show", "counted", "--events", top),
                 ("run", "logs", "counted", "--tail", top)):
        result = runyard(tmp_path, "--store", store_url, *args)
        assert result.returncode == 0, (args, result.stderr)
    logs = runyard(tmp_path, "--store", store_url, "run", "logs", "counted", "--tail", top)
    assert logs.stdout.splitlines() == ["line 0", "line 1", "line 2"]


@pytest.mark.parametrize("version", [HUGE, "²", "0", "-3"])
def test_a_codespec_version_out_of_range_is_refused(tmp_path: Path, version: str) -> None:
    (tmp_path / "echo.yaml").write_text(CODESPEC)
    assert runyard(tmp_path, "codespec", "create", "-f", "echo.yaml").returncode == 0
    one_line_error(runyard(tmp_path, "codespec", "show", f"echo/versions/{version}"),
                   "invalid codespec version")


def test_a_number_in_range_still_works(tmp_path: Path) -> None:
    (tmp_path / "echo.yaml").write_text(CODESPEC)
    assert runyard(tmp_path, "codespec", "create", "-f", "echo.yaml").returncode == 0
    listed = runyard(tmp_path, "run", "list", "--limit", "2147483647")
    assert listed.returncode == 0, listed.stderr
    shown = runyard(tmp_path, "codespec", "show", "echo/versions/1", "--json")
    assert json.loads(shown.stdout)["version"] == 1


@pytest.mark.parametrize("text", ["99999999999999999999", "１２", "--5", "1e3", "", "0x10"])  # noqa: RUF001
def test_count_refuses_what_is_not_a_whole_number_in_range(text: str) -> None:
    with pytest.raises(click.BadParameter):
        Count(0).convert(text, None, None)


def test_count_accepts_its_bounds() -> None:
    assert Count(0).convert("0", None, None) == 0
    assert Count(1).convert(" +0007 ", None, None) == 7
    assert Count(0).convert(str(MAX_COUNT), None, None) == MAX_COUNT


# -- config files -----------------------------------------------------------------------------
def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "runyard.yaml").write_bytes(b"run_log_store:\n  type: sqlite\n# caf\xe9\n")
    one_line_error(runyard(tmp_path, "run", "list"), "runyard.yaml", "not UTF-8")


def test_a_config_file_nested_too_deeply(tmp_path: Path) -> None:
    (tmp_path / "runyard.yaml").write_text(DEEP_YAML)
    one_line_error(runyard(tmp_path, "run", "list"), "runyard.yaml", "nested too deeply")


@pytest.mark.parametrize("content", [DEEP_YAML.encode(), b"configs:\n  x: \xff\n"])
def test_a_runtimes_file_nested_too_deeply_or_not_utf8(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "runtimes.yaml").write_bytes(content)
    one_line_error(runyard(tmp_path, "config", "list"), "runtimes.yaml")


@pytest.mark.parametrize(
    "args", [("codespec", "create", "-f", "deep.yaml"), ("run", "exec", "-f", "deep.yaml")]
)
def test_a_codespec_or_run_spec_nested_too_deeply(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "deep.yaml").write_text("job: " + DEEP_YAML)
    one_line_error(runyard(tmp_path, *args), "deep.yaml", "nested too deeply")


# -- deep metadata ----------------------------------------------------------------------------
def deep(levels: int) -> dict[str, object]:
    top: dict[str, object] = {}
    here = top
    for _ in range(levels):
        here["a"] = {}
        here = here["a"]  # type: ignore[assignment]
    return top


def test_deep_metadata_through_the_python_api_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    try:
        good = create_run(store, name="before", metadata={"lr": 0.1})
        with pytest.raises(ValidationError, match="nested more than 100 levels"):
            create_run(store, name="deep", metadata=deep(100_000))
        with pytest.raises(ValidationError, match="parameters is nested"):
            create_run(store, name="deep-params", parameters={"p": [deep(200)]})
        after = create_run(store, name="after", metadata=deep(50))  # deep, but within bounds
        names = {r.name for r in store.list_runs()}
        assert names == {"before", "after"}
        assert store.get_run(good.id).metadata == {"lr": 0.1}
        assert store.get_run(after.id).metadata == deep(50)
    finally:
        store.close()


def test_metadata_that_contains_itself_is_refused(tmp_path: Path) -> None:
    looped: dict[str, object] = {"x": 1}
    looped["self"] = looped
    store = open_store(f"sqlite://{tmp_path}/runyard.db")
    try:
        with pytest.raises(ValidationError, match="contains itself"):
            create_run(store, metadata=looped)
    finally:
        store.close()


def test_deep_metadata_through_the_tracking_client_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runyard.db"
    with pytest.raises(ValidationError, match="metadata is nested"):
        Run(store=url).init(name="deep", metadata=deep(100_000))
    with Run(store=url) as run:
        run.init(name="kept", metadata={"a": 1})
        with pytest.raises(ValidationError, match="metadata is nested"):
            run.update_metadata({"b": deep(100_000)})
        run.update_metadata({"c": 2})
    store = open_store(url)
    try:
        kept = store.get_run_by_name("kept")
        assert kept.metadata == {"a": 1, "c": 2} and kept.status is Status.SUCCEEDED
    finally:
        store.close()


def test_a_deeply_nested_param_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        "from runyard import task, workflow\n@task\ndef one(x):\n    return x\n"
        "@workflow\ndef flow(x=1):\n    return one(x)\n")
    one_line_error(runyard(tmp_path, "workflow", "run", "flows:flow", "--param", "x=" +
                           DEEP_YAML), "--param x", "nested too deeply")


# -- workflow modules -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def broken(:\n    pass\n", ("syntax error", "broken_flows.py line 1")),
        ("def f():\n    pass\n      x = 1\n", ("indentation error", "line 3")),
        ("raise RuntimeError('no GPU here')\n", ("RuntimeError: no GPU here",)),
    ],
)
def test_a_workflow_module_that_fails_to_import(
    tmp_path: Path, source: str, words: tuple[str, ...]
) -> None:
    (tmp_path / "broken_flows.py").write_text(source)
    result = runyard(tmp_path, "workflow", "run", "broken_flows:flow")
    one_line_error(result, "cannot import 'broken_flows'", *words)


def test_a_rerun_whose_workflow_module_no_longer_compiles(tmp_path: Path) -> None:
    flows = tmp_path / "flows.py"
    flows.write_text("from runyard import task, workflow\n@task\ndef one(x):\n    return x\n"
                     "@workflow\ndef flow(x=1):\n    return one(x)\n")
    first = runyard(tmp_path, "workflow", "run", "flows:flow")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.split()[0]
    flows.write_text("def flow(:\n")
    one_line_error(runyard(tmp_path, "run", "rerun", run_id), "cannot import workflow",
                   "SyntaxError", "flows.py, line 1")
    listed = json.loads(runyard(tmp_path, "run", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [run_id]  # no half-made re-run was left behind


# -- names with a trailing newline ------------------------------------------------------------
def test_names_with_a_trailing_newline_are_refused_on_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/.runyard/runyard.db"
    store = open_store(url)
    create_run(store, name="plain")
    store.close()
    one_line_error(runyard(tmp_path, "run", "rename", "plain", "renamed\n"), "invalid run name")
    (tmp_path / "echo.yaml").write_text(CODESPEC)
    one_line_error(runyard(tmp_path, "codespec", "create", "-f", "echo.yaml", "--name", "e\n"),
                   "invalid codespec name")
    (tmp_path / "nl.yaml").write_text('name: "echo\\n"\ncommand: [echo]\n')
    one_line_error(runyard(tmp_path, "codespec", "create", "-f", "nl.yaml"),
                   "invalid codespec name")
    (tmp_path / "param.yaml").write_text(
        'name: p\ncommand: [cat]\nbuffers: {inputs: ["in\\n"]}\n')
    one_line_error(runyard(tmp_path, "codespec", "create", "-f", "param.yaml"),
                   "invalid buffer name")
    one_line_error(runyard(tmp_path, "config", "save", "mine\n", "--runtime", "process"),
                   "mine")
    listed = runyard(tmp_path, "run", "list")
    assert "plain" in listed.stdout and "renamed" not in listed.stdout  # the run kept its name


@pytest.mark.parametrize(
    ("checker", "value"),
    [
        (check.run_name, "name\n"),
        (check.folder, "/a/b\n"),
        (check.tag, "tag\r"),
        (check.tag, "t\x00ag"),
        (check.metric_name, "loss\r"),
        (check.metric_name, "lo\x00ss"),
    ],
)
def test_validators_refuse_line_breaks_and_nul(checker: object, value: str) -> None:
    with pytest.raises(ValidationError):
        checker(value)  # type: ignore[operator]


def test_other_name_checks_refuse_a_trailing_newline() -> None:
    from runyard.blobs.digests import DIGEST
    from runyard.commands.codespec import codespec_name
    from runyard.engine.config import RuntimeConfiguration

    with pytest.raises(ValidationError):
        codespec_name("echo\n")
    with pytest.raises(ValidationError):
        RuntimeConfiguration("mine\n", "process")
    assert DIGEST.match("a" * 64 + "\n") is None


# -- CSV --------------------------------------------------------------------------------------
def test_csv_export_of_odd_metric_names_reads_back(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/runyard.db"
    odd = ['a,b', 'say "hi"', "ünï,cödé", "=1+2", "  spaced  ", "semi;colon"]
    store = open_store(url)
    try:
        run = create_run(store, name="odd", status=Status.RUNNING)
        store.append_metrics(run.id, [Metric(n, float(i), i, 100.0 + i)
                                      for i, n in enumerate(odd)])
    finally:
        store.close()
    result = runyard(tmp_path, "--store", url, "run", "metrics", "odd", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["name", "step", "value", "time"]
    assert [r[0] for r in rows[1:]] == odd
    assert [float(r[2]) for r in rows[1:]] == [float(i) for i in range(len(odd))]


# -- --store after the subcommand -------------------------------------------------------------
def store_commands() -> list[tuple[str, click.Command]]:
    """Every leaf command that opens a run store."""
    ctx = click.Context(cli)
    found = []
    for group_name in ("run", "codespec", "buffer", "workflow", "store"):
        group = cli.get_command(ctx, group_name)
        assert isinstance(group, click.Group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            if (group_name, name) != ("store", "copy"):  # it names both stores as arguments
                found.append((f"{group_name} {name}", command))
    sync = cli.get_command(ctx, "sync")
    assert sync is not None
    return [*found, ("sync", sync)]


def test_every_store_command_takes_store_after_the_subcommand() -> None:
    ctx = click.Context(cli)
    groups = [(name, cli.get_command(ctx, name)) for name in ("run", "codespec", "buffer",
                                                              "workflow", "store")]
    missing = [name for name, command in [*store_commands(), *groups]
               if command is None or not any("--store" in p.opts for p in command.params)]
    assert missing == []


def test_store_after_the_subcommand_is_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    url = f"file://{elsewhere}"
    store = open_store(url)
    try:
        create_run(store, name="far-away")
    finally:
        store.close()
    listed = runyard(tmp_path, "run", "list", "--store", url)
    assert listed.returncode == 0, listed.stderr
    assert "far-away" in listed.stdout
    shown = runyard(tmp_path, "run", "show", "far-away", "--json", "--store", url)
    assert json.loads(shown.stdout)["name"] == "far-away"
    assert runyard(tmp_path, "--store", url, "run", "list").stdout == listed.stdout  # as before
    same = runyard(tmp_path, "--store", url, "run", "list", "--store", url)
    assert same.stdout == listed.stdout
    grouped = runyard(tmp_path, "run", "--store", url, "list")
    assert grouped.stdout == listed.stdout
    renamed = runyard(tmp_path, "run", "rename", "far-away", "near-by", f"--store={url}")
    assert renamed.returncode == 0, renamed.stderr
    info = runyard(tmp_path, "store", "info", "--json", "--store", url)
    assert json.loads(info.stdout)["store"] == url
    (tmp_path / "echo.yaml").write_text(CODESPEC)
    made = runyard(tmp_path, "codespec", "create", "-f", "echo.yaml", "--store", url)
    assert made.returncode == 0, made.stderr
    assert "echo" in runyard(tmp_path, "codespec", "list", "--store", url).stdout
    assert not (tmp_path / ".runyard").exists()  # the default store was never opened


@pytest.mark.parametrize("where", ["root", "group", "command"])
def test_an_empty_store_is_refused(tmp_path: Path, where: str) -> None:
    args = {"root": ("--store", "", "run", "list"), "group": ("run", "--store", " ", "list"),
            "command": ("run", "list", "--store=")}[where]
    one_line_error(runyard(tmp_path, *args), "'--store'", "it is empty")
    assert not (tmp_path / ".runyard").exists()  # not read as "the default store"


def test_two_different_stores_are_refused(tmp_path: Path) -> None:
    result = runyard(tmp_path, "--store", f"file://{tmp_path}/a", "run", "list",
                     "--store", f"file://{tmp_path}/b")
    one_line_error(result, "--store is given twice")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
