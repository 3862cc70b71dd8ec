"""Choosing the store: --store, RUNYARD_STORE, runyard.yaml, and the .runyard home."""

from __future__ import annotations

from pathlib import Path

import pytest

from runyard.errors import ConfigError
from runyard.stores import blob_location, open_store, resolve_url
from runyard.stores.location import home, parse_url


def test_default_is_sqlite_in_the_working_directory(isolated: Path) -> None:
    assert resolve_url() == f"sqlite://{isolated}/.runyard/runyard.db"


def test_home_is_found_walking_up(isolated: Path) -> None:
    (isolated / ".runyard").mkdir()
    deep = isolated / "a" / "b"
    deep.mkdir(parents=True)
    assert home(deep) == isolated / ".runyard"
    assert resolve_url(start=deep) == f"sqlite://{isolated}/.runyard/runyard.db"


def test_explicit_beats_environment_beats_config(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / "runyard.yaml").write_text("run_log_store: {type: buffered}\n")
    assert resolve_url() == "memory://"
    monkeypatch.setenv("RUNYARD_STORE", "file:///tmp/x")
    assert resolve_url() == "file:///tmp/x"
    assert resolve_url("chunked:///y") == "chunked:///y"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{type: chunked-fs, config: {log_folder: .run_log_store}}", "chunked://{d}/.run_log_store"),
        ("{type: file-system}", "file://{d}/.run_log_store"),
        ("{type: file-system, config: {log_folder: /abs/logs}}", "file:///abs/logs"),
        ("{type: sqlite, config: {path: db/x.db}}", "sqlite://{d}/db/x.db"),
        ("{type: postgres, config: {url: 'postgresql://u@h/db'}}", "postgresql://u@h/db"),
        ("{url: 'memory://named'}", "memory://named"),
    ],
)
def test_config_file_types(isolated: Path, section: str, expected: str) -> None:
    (isolated / "runyard.yaml").write_text(f"run_log_store: {section}\n")
    assert resolve_url() == expected.format(d=isolated)


def test_runyard_config_names_the_file(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = isolated / "elsewhere.yml"
    cfg.write_text("run_log_store:\n  type: chunked-fs\n  config:\n    log_folder: logs\n")
    monkeypatch.setenv("RUNYARD_CONFIG", str(cfg))
    assert resolve_url() == f"chunked://{isolated}/logs"
    monkeypatch.setenv("RUNYARD_CONFIG", str(isolated / "missing.yml"))
    with pytest.raises(ConfigError, match="not a file"):
        resolve_url()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run_log_store: {type: mongo}", "unknown run_log_store type 'mongo'"),
        ("run_log_store: [1, 2", "not valid YAML at line"),
        ("- just a list", "must hold a mapping"),
        ("run_log_store: 3", "must be a mapping"),
        ("run_log_store: {type: postgres}", "needs config.url"),
    ],
)
def test_bad_config_files(isolated: Path, text: str, message: str) -> None:
    (isolated / "runyard.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve_url()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["bogus://x", "nothing", "file://", "sqlite:///", "http//x"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(url)


def test_url_forms() -> None:
    assert parse_url("file:///abs/dir").target == "/abs/dir"
    assert parse_url("chunked://rel/dir").target == "rel/dir"
    assert parse_url("sqlite:rel.db").target == "rel.db"
    assert parse_url("postgresql://u@h:5/db").target == "postgresql://u@h:5/db"


def test_memory_stores_are_shared_by_name() -> None:
    assert open_store("memory://shared-test") is open_store("memory://shared-test")
    assert open_store("memory://one") is not open_store("memory://two")


def test_blob_location_sits_with_the_store(isolated: Path) -> None:
    assert blob_location("file:///data/runs") == Path("/data/runs/blobs")
    assert blob_location("sqlite:///data/x/runyard.db") == Path("/data/x/blobs")
    assert blob_location("memory://") == isolated / ".runyard" / "blobs"
