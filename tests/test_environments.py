"""Environments of recorded runs: detection in repo2docker's order, what is not honoured, uv
builds from the machine's own index settings (offline), the cache, its lock, and failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from record_helpers import context
from runyard.errors import ConfigError, ValidationError
from runyard.recording import environments, pipconfig
from runyard.recording.envdetect import detect
from runyard.recording.environments import BuildFailed, prepare

LOCAL_PACKAGE = "six"  # small, pure Python, in this machine's local index


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv may not touch the network, and starts from an empty cache: only the machine's
    configured local index and wheel folder can provide packages."""
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))


def folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_requirements_pyproject_runtime_and_environment_pip_are_read(tmp_path: Path) -> None:
    work = folder(tmp_path, {
        "requirements.txt": "# pinned\nSix==1.17.0  # six\n\n-r more.txt\n",
        "more.txt": "attrs\n",
        "pyproject.toml": '[project]\nname = "x"\ndependencies = ["Tomli>=2"]\n',
        "runtime.txt": "python-3.11\n",
        "environment.yml": "dependencies:\n  - numpy=1.26\n  - pip\n  - pip:\n    - idna\n",
    })
    needs = detect(work)
    assert needs.requirements == ["attrs", "idna", "six==1.17.0", "tomli>=2"]
    assert needs.python == "3.11"
    assert needs.specs == ["requirements.txt", "more.txt", "pyproject.toml", "runtime.txt",
                           "environment.yml"]
    assert any("conda packages numpy=1.26" in note for note in needs.not_honoured)


def test_binder_folder_is_used_instead_of_the_root(tmp_path: Path) -> None:
    work = folder(tmp_path, {"requirements.txt": "attrs\n", "binder/requirements.txt": "six\n"})
    needs = detect(work)
    assert needs.requirements == ["six"]
    assert needs.specs == ["binder/requirements.txt"]


def test_both_binder_folders_are_refused(tmp_path: Path) -> None:
    work = folder(tmp_path, {"binder/apt.txt": "", ".binder/apt.txt": ""})
    with pytest.raises(ValidationError, match=r"both binder/ and \.binder/"):
        detect(work)


def test_what_is_not_honoured_is_reported_not_skipped(tmp_path: Path) -> None:
    work = folder(tmp_path, {"apt.txt": "curl\n", "install.R": "", "Dockerfile": "FROM x\n",
                             "requirements.txt": "-e .\ngit+https://example.org/x.git\n",
                             "postBuild": "echo hi\n"})
    notes = " | ".join(detect(work, lambda: "no engine here").not_honoured)
    for expected in ("apt.txt: ", "install.R: ", "Dockerfile: not used (no engine here)",
                     "'-e .'", "git+https://example.org/x.git", "postBuild: "):
        assert expected in notes


def test_a_dockerfile_is_reported_not_used_without_a_working_engine(tmp_path: Path) -> None:
    work = folder(tmp_path, {"Dockerfile": "FROM x\n"})
    note = detect(work, environments.dockerfile_note).not_honoured[0]
    assert note.startswith("Dockerfile: not used (")


def test_pip_configuration_is_passed_to_uv(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = file:///somewhere/simple\n"
                    "extra-index-url = file:///a/simple file:///b/simple\n"
                    "[install]\nfind-links = /wheels\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    options = pipconfig.index_options()
    assert options[:2] == ["--index-url", "file:///somewhere/simple"]
    assert options[2:6] == ["--extra-index-url", "file:///a/simple", "--extra-index-url",
            "file:///b/simple"]
    assert options[6:] == ["--find-links", "/wheels"]
    monkeypatch.setenv("PIP_INDEX_URL", "file:///from-env/simple")
    assert pipconfig.index_options()[:2] == ["--index-url", "file:///from-env/simple"]
    monkeypatch.setenv("UV_INDEX_URL", "file:///uv-own/simple")  # uv reads it itself
    assert "--index-url" not in pipconfig.index_options()


@pytest.mark.usefixtures("offline")
def test_requirements_build_offline_from_the_local_index(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    work = folder(tmp_path / "work", {"requirements.txt": f"{LOCAL_PACKAGE}\n"})
    env = prepare(ctx, work)
    assert env.path is not None and env.path.parent == ctx.blob_root.parent / "envs"
    python = env.path / "bin" / "python"
    done = subprocess.run([python, "-c", f"import {LOCAL_PACKAGE}"], capture_output=True)
    assert done.returncode == 0, done.stderr
    lock = ctx.blobs.read_bytes(env.lock or "").decode()
    assert f"{LOCAL_PACKAGE}==" in lock and "--hash=sha256:" in lock
    assert "index-url" not in lock and "file://" not in lock and "find-links" not in lock
    assert env.identity()["python"] == env.python and env.platform
    assert [p.name for p in env.path.parent.iterdir() if p.name.startswith(".tmp-")] == []


@pytest.mark.usefixtures("offline")
def test_an_environment_is_reused_across_versions(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    first = prepare(ctx, folder(tmp_path / "a", {"requirements.txt": "six\n"}))
    marker = first.path / "marker"  # type: ignore[operator]
    marker.write_text("")
    second = prepare(ctx, folder(tmp_path / "b", {"requirements.txt": "# same\nSix\n",
                                                  "data.csv": "1,2\n"}))
    assert second.path == first.path and second.lock == first.lock and marker.exists()
    other = prepare(ctx, folder(tmp_path / "c", {"requirements.txt": "attrs\n"}))
    assert other.path != first.path


@pytest.mark.usefixtures("offline")
def test_two_concurrent_builds_of_one_key_make_one_environment(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    works = [folder(tmp_path / f"w{i}", {"requirements.txt": "six\n"}) for i in range(2)]
    results: list[object] = []
    threads = [threading.Thread(target=lambda w=w: results.append(prepare(ctx, w)))
               for w in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    paths = {getattr(r, "path", None) for r in results}
    assert len(results) == 2 and len(paths) == 1
    envs = ctx.blob_root.parent / "envs"
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == [
        next(iter(paths)).name]  # type: ignore[union-attr]


@pytest.mark.usefixtures("offline")
def test_a_failing_build_says_why_in_one_line(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    work = folder(tmp_path / "w", {"requirements.txt": "no-such-package-runyard-test==9.9\n"})
    logged: list[str] = []
    with pytest.raises(BuildFailed) as caught:
        prepare(ctx, work, log=logged.append)
    message = str(caught.value)
    assert "\n" not in message and "no-such-package-runyard-test" in message
    assert message.startswith("the environment did not build (uv pip compile exited")
    assert any("no-such-package-runyard-test" in line for line in logged)
    assert not any((ctx.blob_root.parent / "envs").glob(".tmp-*"))


def test_runtime_txt_uses_an_interpreter_of_this_machine(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = prepare(ctx, folder(tmp_path / "w", {"runtime.txt": f"python-{wanted}\n"}))
    assert env.python.startswith(wanted + ".")
    assert env.specs == ["runtime.txt"]


def test_runtime_txt_asking_for_an_absent_python_is_refused(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with pytest.raises(ConfigError, match=r"Python 3\.99, which this machine does not have"):
        prepare(ctx, folder(tmp_path / "w", {"runtime.txt": "python-3.99\n"}))


def test_no_env_uses_the_callers_python_and_reports_the_unused_specs(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    env = prepare(ctx, folder(tmp_path / "w", {"requirements.txt": "six\n"}), use_env=False)
    assert env.path is None and env.bin == Path(sys.executable).parent
    assert env.identity()["built"] is False
    assert env.not_honoured == ["requirements.txt: not used (--no-env)"]
    assert not (ctx.blob_root.parent / "envs").exists()


def test_the_cache_folder_holds_the_environments_metadata(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    env = prepare(ctx, folder(tmp_path / "w", {}))
    assert env.path is not None
    meta = json.loads((env.path / environments.META).read_text())
    assert meta["requirements"] == []
    assert os.access(env.path / "bin" / "python", os.X_OK)


@pytest.mark.usefixtures("offline")
def test_a_pinned_lock_is_installed_exactly_whatever_the_requirements_say_now(
        tmp_path: Path) -> None:
    ctx = context(tmp_path)
    first = prepare(ctx, folder(tmp_path / "a", {"requirements.txt": "six\n"}))
    assert first.lock is not None
    again = prepare(ctx, folder(tmp_path / "b", {"requirements.txt": "six\n"}), pinned=first.lock)
    assert again.path == first.path  # the cached environment was installed from that lock
    other = prepare(ctx, folder(tmp_path / "c", {"requirements.txt": "attrs\n"}),
                    pinned=first.lock)
    assert other.path is not None and other.path != first.path and other.lock == first.lock
    python = str(other.path / "bin" / "python")
    assert subprocess.run([python, "-c", "import six"]).returncode == 0
    assert subprocess.run([python, "-c", "import attrs"], capture_output=True).returncode != 0


def test_a_killed_builds_temporary_folder_is_cleared_by_the_next_build(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    work = folder(tmp_path / "w", {})
    key = environments.env_key(*environments.describe(sys.executable)[::2], [])
    stale = environments.envs_root(ctx) / f".tmp-{key}-deadbeef"
    (stale / "bin").mkdir(parents=True)
    env = prepare(ctx, work)
    assert env.key == key and not stale.exists()
