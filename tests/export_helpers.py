"""Helpers for the export tests: a version with recorded runs, the validator run offline.

The recorded runs are made as ``runyard record`` lays them out (spec12.md: a run of kind
``recorded`` with its internals, environment, resources, catalog, logs and metrics), so these
tests check the export of exactly that layout without executing anything.
"""

from __future__ import annotations

import email.message
import io
import os
import time
import urllib.error
import urllib.request
import urllib.response
import zipfile
from pathlib import Path
from typing import Any

from runyard.core.context import StoreContext
from runyard.core.runs import create_run
from runyard.model import Artifact, Event, Kind, LogLine, Metric, RunRecord, Stage, Status
from runyard.recording.versions import create_version, read_manifest

CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"


def make_workspace(root: Path) -> Path:
    """A workspace with a script, text, a binary file, a nested file and a symbolic link."""
    folder = root / "ws"
    (folder / "data").mkdir(parents=True)
    (folder / "runyard.yaml").write_text("")
    (folder / "run.sh").write_text("#!/bin/sh\nwc -l data/input.csv > out/count.txt\n")
    (folder / "run.sh").chmod(0o755)
    (folder / "data" / "input.csv").write_text("".join(f"{i},{i * i}\n" for i in range(500)))
    (folder / "data" / "noise.bin").write_bytes(os.urandom(200_000))
    (folder / "with space & ü.txt").write_text("odd name\n")
    (folder / "link").symlink_to("data/input.csv")
    return folder


def recorded_run(context: StoreContext, version: RunRecord, name: str,
                 outputs: dict[str, bytes], *, status: Status = Status.SUCCEEDED,
                 reason: str | None = None) -> RunRecord:
    """A finished recorded run of ``version`` that wrote ``outputs``, as spec12.md has it."""
    store, blobs = context.store, context.blobs
    manifest = read_manifest(context, version)
    lock = blobs.put_bytes(b"numpy==2.0.0 \\\n    --hash=sha256:" + b"0" * 64 + b"\n")
    run = create_run(
        store, name=name, kind=Kind.RECORDED, status=Status.RUNNING,
        internals={"version": version.id, "entrypoint": ["sh", "run.sh"],
                   "executor": "sandbox", "network": False, "env": "e" * 64,
                   "folder": f"runs/{name}", "exit_code": 0 if status is Status.SUCCEEDED
                   else 1},
        environment={"python": "3.11.7", "platform": "linux-x86_64", "lock": lock.digest,
                     "specs": ["requirements.txt"],
                     "not_honoured": [{"file": "apt.txt", "why": "no apt here"}]},
        resources={"cpu_user": 0.25, "cpu_system": 0.05, "peak_memory": 12_345_678,
                   "read_bytes": 4096, "write_bytes": 8192},
    )
    now = time.time()
    catalog = [Artifact(p, e.sha256, e.size, Stage.GET, now, None, "input")
               for p, e in sorted(manifest.items()) if not e.is_link]
    for path, data in sorted(outputs.items()):
        ref = blobs.put_bytes(data)
        catalog.append(Artifact(path, ref.digest, ref.size, Stage.PUT, now, None, "output"))
    store.add_artifacts(run.id, catalog)
    store.append_logs(run.id, [LogLine(now, "counting\n", "stdout"),
                               LogLine(now + 0.1, "done\n", "stderr")])
    store.append_metrics(run.id, [Metric("system.cpu_percent", 12.5, None, now),
                                  Metric("system.memory", 1e7, None, now + 1)])
    store.append_events(run.id, [Event(now, "outputs captured")])
    return store.update_status(run.id, status, reason)


def version_with_runs(context: StoreContext, root: Path, runs: int = 3) -> RunRecord:
    """A version of ``make_workspace`` with ``runs`` recorded runs (the last one failed)."""
    version = create_version(context, make_workspace(root), name="paper-v1",
                             message="the code of the paper")
    for i in range(runs):
        failed = i == runs - 1 and runs > 1
        recorded_run(context, version, f"run-{i}", {
            "out/count.txt": b"500 data/input.csv\n",
            f"out/only-{i}.txt": f"run {i}\n".encode(),
        }, status=Status.FAILED if failed else Status.SUCCEEDED,
            reason="exit code 1" if failed else None)
    return version


def snapshot(context: StoreContext) -> dict[str, Any]:
    """Everything the store holds about its runs, comparable with ``==`` (the workspace a run
    names counts as where it was exported from: an import keeps it so)."""
    store = context.store
    found = {}
    for run in store.list_runs():
        internals = dict(run.internals)
        if "workspace" in internals:
            internals["exported_from"] = internals.pop("workspace")
        found[run.id] = (run.replace(internals=internals), store.get_steps(run.id),
                         sorted(store.list_artifacts(run.id), key=lambda a: (a.name, a.stage)),
                         store.read_logs(run.id), store.read_metrics(run.id),
                         store.read_events(run.id))
    return found


def rewrite_zip(src: Path, dst: Path, change: dict[str, bytes | None],
                extra: dict[str, bytes] | None = None) -> None:
    """A copy of the zip ``src`` at ``dst`` with members replaced (or dropped: None)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for info in old.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is not None:
                    new.writestr(info, data)
            else:
                new.writestr(info, old.read(info))
        for name, data in (extra or {}).items():
            new.writestr(name, data)


class _OfflineContext(urllib.request.BaseHandler):
    """Answers the RO-Crate 1.1 context from the copy the ``rocrate`` package ships; every
    other URL is unreachable, as it is offline."""

    handler_order = 100  # before urllib's own http(s) handlers

    def https_open(self, req: urllib.request.Request) -> urllib.response.addinfourl:
        import rocrate

        if req.full_url.rstrip("/") != CONTEXT_URL:
            raise urllib.error.URLError(f"offline: {req.full_url}")
        data = (Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_bytes()
        headers = email.message.Message()
        headers["Content-Type"] = "application/ld+json"
        reply = urllib.response.addinfourl(io.BytesIO(data), headers, req.full_url, 200)
        reply.msg = "OK"  # type: ignore[attr-defined]  # (urllib's handlers read it)
        return reply

    http_open = https_open


def validate_crate(path: Path, severity: str = "REQUIRED") -> list[str]:
    """The issues ``rocrate-validator`` finds in the crate at ``path`` (a folder or zip)
    against Process Run Crate 0.5 at ``severity``, offline (see RECIPES.md)."""
    from rocrate_validator import services

    urllib.request.install_opener(urllib.request.build_opener(_OfflineContext))
    try:
        settings = services.ValidationSettings(
            rocrate_uri=str(path), profile_identifier="process-run-crate-0.5",
            requirement_severity=severity,
            skip_checks=["ro-crate-1.1_3.1", "ro-crate-1.1_3.2"])
        result = services.validate(settings)
    finally:
        urllib.request.install_opener(urllib.request.build_opener())
    return [f"{issue.check.identifier}: {issue.message}" for issue in result.get_issues()]
