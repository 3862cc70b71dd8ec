"""The store context: opened once, pickled as its configuration, blobs where configuration
says (never silently the working directory for a store without a folder), and the registry
kept in the run store itself."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sqlite3
from pathlib import Path

import pytest

import runyard
from commands_helpers import ok
from runyard.core.context import StoreContext, blobs_shown, context_of, open_context
from runyard.errors import ConfigError
from runyard.stores import open_store


def test_one_context_per_store(isolated: Path) -> None:
    url = f"sqlite://{isolated}/s/runyard.db"
    ctx = open_context(url)
    assert open_context(url) is ctx and context_of(ctx.store) is ctx
    assert runyard.open_context(url) is ctx  # (the public name)
    assert ctx.blob_root == isolated / "s" / "blobs" and ctx.blobs.root == ctx.blob_root
    assert ctx.registry.store is ctx.store


def test_pickles_as_its_configuration(isolated: Path) -> None:
    url = f"file://{isolated}/runs"
    ctx = open_context(url, isolated / "elsewhere")
    ctx.blobs.put_bytes(b"x")
    text = pickle.dumps(ctx)
    assert b"sqlite3" not in text and len(text) < 300
    again = pickle.loads(text)
    assert (again.url, again.blob_root) == (url, isolated / "elsewhere")
    mp = multiprocessing.get_context("spawn")
    with mp.Pool(1) as pool:
        assert pool.apply(_blob_root_there, (ctx,)) == str(isolated / "elsewhere")


def _blob_root_there(ctx: StoreContext) -> str:
    return str(ctx.blob_root)


def test_a_store_without_a_folder_needs_configured_blobs(
        isolated: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNYARD_BLOBS", raising=False)
    ctx = open_context(pg_url)
    with pytest.raises(ConfigError, match="RUNYARD_BLOBS"):
        ctx.blobs  # noqa: B018
    assert not (isolated / ".runyard").exists()
    assert blobs_shown(pg_url).startswith("(not set")  # as `runyard store info` shows it
    assert pickle.loads(pickle.dumps(ctx)).url == pg_url  # (without a blob folder yet)
    (isolated / "runyard.yaml").write_text("blobs: shared/blobs\n")
    assert open_context(pg_url).blob_root == isolated / "shared" / "blobs"
    monkeypatch.setenv("RUNYARD_BLOBS", str(isolated / "env-blobs"))
    assert open_context(pg_url).blob_root == isolated / "env-blobs"
    sqlite = f"sqlite://{isolated}/s/runyard.db"  # a store with a folder keeps them beside it
    assert open_context(sqlite).blob_root == isolated / "s" / "blobs"


def test_a_bad_blobs_setting_is_a_clear_error(isolated: Path) -> None:
    (isolated / "runyard.yaml").write_text("blobs: [1, 2]\n")
    with pytest.raises(ConfigError, match="must be a folder path"):
        open_context("memory://x").blob_root  # noqa: B018


def test_a_forked_child_opens_its_own(isolated: Path) -> None:
    ctx = open_context(f"sqlite://{isolated}/runyard.db")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, b"1" if open_context(ctx.url) is not ctx else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def test_codespecs_and_buffers_live_in_the_run_store(isolated: Path) -> None:
    url = f"sqlite://{isolated}/store/runyard.db"
    (isolated / "spec.yml").write_text('name: hello\ncommand: ["echo", "hi"]\n')
    assert ok(isolated, "--store", url, "codespec", "create", "-f", "spec.yml").strip() == \
        "hello/versions/1"
    buffer_id = ok(isolated, "--store", url, "buffer", "create").strip()
    store = open_store(url)
    assert [c.name for c in store.list_codespecs()] == ["hello"]
    assert store.get_buffer(buffer_id).state == "created"
    assert not list(isolated.rglob("commands.db"))


def test_codespecs_of_an_older_runyard_are_adopted(isolated: Path) -> None:
    url = f"sqlite://{isolated}/store/runyard.db"
    legacy = isolated / "store" / "commands.db"
    legacy.parent.mkdir()
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE codespecs (name TEXT, version INTEGER, created REAL, "
                     "digest TEXT, spec TEXT)")
        for version, command in ((1, '["true"]'), (2, '["false"]')):
            conn.execute("INSERT INTO codespecs VALUES (?, ?, ?, ?, ?)",
                         ("old", version, 5.0, f"d{version}",
                          f'{{"name": "old", "command": {command}}}'))
    conn.close()
    shown = ok(isolated, "--store", url, "codespec", "show", "old/versions/2")
    assert "false" in shown
    assert [v.version for v in open_store(url).list_codespecs("old")] == [1, 2]
    assert not legacy.exists() and legacy.with_name("commands.db.imported").exists()
