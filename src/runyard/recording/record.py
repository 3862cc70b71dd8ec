"""``record``: execute an entrypoint on a version of a workspace, and keep what it made.

A recorded run is what a reviewer can trust: it ran on a known version (a fresh copy of it, the
inputs read-only), with a known environment (built from the version's files, its lock kept),
isolated (the sandbox by default: no network, nothing writable but its work folder), and every
file it created or changed is kept by hash, listed in its catalog and mirrored read-only in
``<workspace>/runs/<name>/``. The steps, each in its own module: the version (``versions``),
the environment (``environments``), the job (``jobrun``), the outputs (``outputs``).

The run is created ``running`` with this process as its owner, under the run lease (heartbeat,
cancel, final status). If this process is killed, the warden ends the job, the run is found
``lost``, and no ``runs/`` folder is left (it is made whole in a temporary folder, then
renamed). Renaming a recorded run renames its ``runs/`` folder too (``rename``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import stat
import time
from collections.abc import Container, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.core.lease import Lease
from runyard.core.runs import create_run
from runyard.errors import RunyardError, ValidationError
from runyard.model import Kind, RunRecord, Status
from runyard.processes import executors
from runyard.processes.executors import check_executor, which
from runyard.processes.meter import JobMeter
from runyard.processes.owners import this_owner
from runyard.processes.sandbox import private_folder
from runyard.recording import environments, outputs
from runyard.recording.jobrun import Launch, LogSink, Stream, run_job
from runyard.recording.manifest import Manifest
from runyard.recording.versions import (
    create_version,
    find_workspace,
    get_version,
    materialize,
    read_manifest,
)

if TYPE_CHECKING:
    from runyard.core.context import StoreContext
    from runyard.recording.environments import Environment

HEARTBEAT_S = 2.0
RUNS = "runs"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_FOLDER = "/runyard/work"  # the work folder as every sandboxed job sees it: the paths
# a job writes down (its working directory, HOME) are the same in every run and reproduction


def record(context: StoreContext, workspace: Path, entrypoint: Sequence[str], *,
           version: str | None = None, name: str | None = None, network: bool = False,
           executor: str = "sandbox", use_env: bool = True, timeout: float | None = None,
           stream: Stream | None = None, origin: str | None = None,
           pinned: str | None = None) -> RunRecord:
    """Record ``entrypoint`` (a script or Python file of the version, or a command) run on
    ``version`` (a new version of ``workspace`` if none); the run as it ended.

    ``stream(name, line)`` gets the job's output as it comes; ``origin``: the run this one
    reproduces; ``pinned``: the digest of the lock to install its environment from."""
    entry = _check_entrypoint(entrypoint, timeout)
    executor = check_executor(executor)
    folder = find_workspace(workspace)
    if version is None:
        _check_file(entry, _files_of(folder, entry[0]), None)
    ver = get_version(context, version) if version else create_version(context, folder)
    manifest = read_manifest(context, ver)
    _check_file(entry, manifest, ver)
    run = create_run(
        context.store, name=name, kind=Kind.RECORDED, status=Status.RUNNING,
        owner=this_owner(), heartbeat=time.time(), origin=origin,
        config={"heartbeat_interval": HEARTBEAT_S},
        internals={"version": ver.id, "entrypoint": entry, "executor": executor,
                   "network": network, "env": None, "folder": None,
                   "workspace": str(folder)})
    recorder = _Recorder(context, run, folder, ver, manifest, stream)
    return recorder.go(use_env, timeout, pinned)


def _check_entrypoint(entrypoint: Sequence[str], timeout: float | None) -> list[str]:
    entry = [str(part) for part in entrypoint]
    if not entry or not entry[0].strip():
        raise ValidationError("no entrypoint given: name a script, a Python file or a command")
    if timeout is not None and not timeout > 0:
        raise ValidationError(f"timeout must be a positive number of seconds, not {timeout}")
    return entry


def _check_file(entry: list[str], files: Container[str], ver: RunRecord | None) -> None:
    """A path-like entrypoint must be a file of the version (of the workspace, before a
    version is made of it)."""
    first = _as_path(entry[0])
    looks_like_file = "/" in entry[0] or first.endswith((".py", ".sh"))
    if first not in files and looks_like_file and not _host_program(entry[0]):
        where = "the workspace" if ver is None else f"version {ver.name}"
        raise ValidationError(f"entrypoint {entry[0]!r} is not a file of {where}; check the "
                              "path (relative to the workspace)")


def _files_of(folder: Path, first: str) -> set[str]:
    path = folder / _as_path(first)
    return {_as_path(first)} if path.is_file() or path.is_symlink() else set()


def _host_program(path: str) -> bool:
    """An absolute path to a program of this machine (``/usr/bin/python3``) is a command."""
    return os.path.isabs(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def _as_path(text: str) -> str:
    return text[2:] if text.startswith("./") else text


class _Recorder:
    """One record, from the run's creation to its end."""

    def __init__(self, context: StoreContext, run: RunRecord, workspace: Path,
                 version: RunRecord, manifest: Manifest, stream: Stream | None) -> None:
        self.context, self.run, self.workspace = context, run, workspace
        self.version, self.manifest = version, manifest
        self.lease = Lease(context.store, run.id, heartbeat_s=HEARTBEAT_S)
        self.sink = LogSink(context.store, run.id, stream)
        self.base = context.work_dir(run.id)
        self.work = self.base / "work"
        self.meter: JobMeter | None = None

    def go(self, use_env: bool, timeout: float | None, pinned: str | None) -> RunRecord:
        try:
            private_folder(self.base)
            self.meter = JobMeter()  # its first warden starts now, while the work is prepared
            executors.prestart(self.meter.procs_files)
            return self._go(use_env, timeout, pinned, self.meter)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error matters more
                self.sink.flush()
                why = " ".join(f"{exc}".split())[:500] or type(exc).__name__
                final = Status.CANCELED if isinstance(exc, KeyboardInterrupt) else Status.FAILED
                self.lease.end(final, why)
            raise
        finally:
            if self.meter is not None:
                self.meter.close()
            outputs.remove_tree(self.base)

    def _go(self, use_env: bool, timeout: float | None, pinned: str | None,
            meter: JobMeter) -> RunRecord:
        outputs.sweep_partial(self.context.store, self.workspace / RUNS)
        self.work.mkdir(mode=0o700)
        materialize(self.context, self.manifest, self.work, read_only=True)
        env = environments.prepare(self.context, self.work, use_env=use_env, pinned=pinned,
                                   tick=self._tick,
                                   log=lambda line: self.sink.add("build", line, "environment"))
        self.sink.flush()
        self.context.store.update_run(self.run.id, environment=env.identity(),
                                      internals={**self.run.internals, "env": env.key})
        command = self._command(env)
        launch = Launch(command, self._job_env(env), self.work, self.base,
                        str(self.run.internals["executor"]), _read_only(env),
                        bool(self.run.internals["network"]), timeout, SANDBOX_FOLDER)
        result = run_job(launch, self.lease, self.sink, meter)
        captured = outputs.capture(self.context, self.work, self.manifest)
        self.context.store.add_artifacts(self.run.id, outputs.catalog(self.manifest, captured))
        self.run = self.context.store.get_run(self.run.id)  # (renamed meanwhile?)
        doc = self._run_json(result, env, captured, command)
        outputs.mirror(self.context, self.workspace / RUNS, self.run.name, self.run.id,
                       captured, self.base, {".entrypoint": _entry_text(self.run),
                                             "run.json": outputs.run_json(doc)})
        internals = {**self.run.internals, "env": env.key, "exit_code": result.exit_code,
                     "outputs": len(captured.outputs), "skipped": captured.skipped,
                     "folder": f"{RUNS}/{self.run.name}"}
        return self.lease.end(result.status, result.reason, internals=internals,
                              resources=result.resources)

    def _tick(self) -> None:
        if self.lease.tick():
            raise RunyardError("canceled by request while its environment was built")

    def _command(self, env: Environment) -> list[str]:
        entry = list(self.run.internals["entrypoint"])
        first = _as_path(entry[0])
        found = self.manifest.get(first)
        if found is not None:
            if first.endswith(".py"):
                return [str(env.bin / "python"), first, *entry[1:]]
            if found.mode & 0o111:
                return [f"./{first}", *entry[1:]]
            return ["bash" if which("bash") else "sh", first, *entry[1:]]
        if not _host_program(entry[0]) and which(entry[0], f"{env.bin}:{SYSTEM_PATH}") is None:
            raise ValidationError(f"entrypoint {entry[0]!r} is neither a file of version "
                                  f"{self.version.name} nor a command found on PATH")
        return entry

    def _job_env(self, env: Environment) -> dict[str, str]:
        """A small, fixed environment: what the job sees does not depend on the caller's.
        No bytecode caches: they hold the sources' times, which differ in every work folder,
        so they would be outputs that never reproduce."""
        job = {"PATH": f"{env.bin}:{SYSTEM_PATH}", "HOME": str(self.work),
               "LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
               "RUNYARD_RUN_ID": self.run.id, "RUNYARD_VERSION_ID": self.version.id}
        if env.path is not None:
            job["VIRTUAL_ENV"] = str(env.path)
        for name in ("TZ", "TERM"):
            if name in os.environ:
                job[name] = os.environ[name]
        return job

    def _run_json(self, result: Any, env: Environment, captured: outputs.Captured,
                  command: list[str]) -> dict[str, Any]:
        not_mirrored = sorted(set(captured.outputs) & set(outputs.RESERVED))
        return {"id": self.run.id, "name": self.run.name, "kind": "recorded",
                "status": result.status.value, "status_reason": result.reason,
                "exit_code": result.exit_code, "started": result.started,
                "ended": result.ended, "resources": result.resources,
                "environment": env.identity(), "version": {
                    "id": self.version.id, "name": self.version.name,
                    "manifest": self.version.internals.get("manifest")},
                "entrypoint": self.run.internals["entrypoint"], "command": command,
                "executor": self.run.internals["executor"],
                "network": self.run.internals["network"], "origin": self.run.origin,
                "outputs": {p: {"sha256": d, "size": s}
                            for p, (d, s) in sorted(captured.outputs.items())},
                "skipped": captured.skipped, "not_mirrored": not_mirrored}


def _read_only(env: Environment) -> list[str]:
    """What the sandbox must show the job, read-only, besides its work folder."""
    folders = [] if env.path is None else [str(env.path)]
    if env.base_prefix and not env.base_prefix.startswith("/usr"):
        folders.append(env.base_prefix)
    return folders


def _entry_text(run: RunRecord) -> bytes:
    return (shlex.join(run.internals["entrypoint"]) + "\n").encode("utf-8")


def rename(context: StoreContext, run: RunRecord, new_name: str) -> RunRecord:
    """Rename a run; a recorded run's ``runs/`` folder goes with it (the store first, then the
    folder, by one ``rename``; if that fails, the store's name is put back)."""
    renamed = context.store.rename_run(run.id, new_name)
    old = _mirror_of(run)
    if old is None or not old.exists():
        return renamed
    new = old.with_name(renamed.name)
    try:
        if new.exists():
            raise FileExistsError(f"{new} already exists")
        os.rename(old, new)
    except OSError as exc:
        context.store.rename_run(run.id, run.name)
        raise RunyardError(f"cannot rename {old} to {new.name}: {exc}; the run keeps its "
                           "name") from exc
    internals = {**renamed.internals, "folder": f"{RUNS}/{renamed.name}"}
    return context.store.update_run(run.id, internals=internals)


def _mirror_of(run: RunRecord) -> Path | None:
    if run.kind is not Kind.RECORDED:
        return None
    workspace = run.internals.get("workspace")
    folder = run.internals.get("folder")
    if not isinstance(workspace, str) or not isinstance(folder, str):
        return None
    # Only ever a folder right under the workspace's runs/: internals are data (an imported
    # run, a client of the server), never a path to follow elsewhere.
    parts = folder.split("/")
    if not os.path.isabs(workspace) or len(parts) != 2 or parts[0] != RUNS \
            or parts[1] in ("", ".", "..") or "\x00" in parts[1] or "\x00" in workspace:
        return None
    path = Path(workspace, RUNS, parts[1])
    if path.is_symlink() or Path(workspace, RUNS).is_symlink() or not path.is_dir():
        return None
    return path if _names_run(path / "run.json", run.id) else None


def _names_run(run_json: Path, run_id: str) -> bool:
    """Whether ``run_json`` is the mirror's own: a regular file of this user (not followed if
    a link) whose ``id`` is ``run_id``. Internals alone may name any folder (a client of the
    server sets them); only a folder the record made for this very run is renamed."""
    try:
        fd = os.open(run_json, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() \
                or info.st_size > 1 << 24:
            return False
        try:
            doc = json.loads(handle.read())
        except ValueError:
            return False
    return isinstance(doc, dict) and doc.get("id") == run_id
