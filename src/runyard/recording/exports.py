"""Export a version with all its recorded runs as one zip, and import such a zip.

The zip is a BagIt bag (SHA-512 manifest and tag manifest, ``recording.bagzip``) whose
payload (``data/``) is an RO-Crate 1.1 conforming to the Process Run Crate 0.5 profile
(``recording.crate``)::

    data/ro-crate-metadata.json      the crate: each recorded run a CreateAction
    data/workspace/<path>            the version's files (its symbolic links: see below)
    data/runs/<run name>/<path>      each run's outputs
    data/runyard/manifest.json       the version's manifest, byte for byte (its digest)
    data/runyard/blobs/<sha256>      any other blob the runs name (a link's target, a lock)
    data/runyard/bundle.json         the runs as runyard keeps them (``recording.bundle``)

Every blob is read once and streamed into the zip, hashed on the way: its SHA-256 must be
the digest it is stored under, or the export fails (a damaged blob store is never exported).
Data that does not shrink is stored, the rest deflated at zip's default level. The zip is
written beside ``out`` and linked into place, so ``out`` appears whole or not at all, and an
existing ``out`` is never overwritten (``ConflictError``).

The crate passes ``rocrate-validator`` 0.13 (``process-run-crate-0.5``, required level).
Given the zip (or the unpacked bag) rather than its ``data/`` folder, that version wrongly
reports a file missing whenever its path holds ``data/`` (``workspace/data/x.csv``): it takes
such a path for one already inside the bag's payload (``BagitROCrate.__check_search_path__``).
Validate the unpacked ``data/`` folder for such workspaces.

Importing is ``recording.importing.import_bundle`` (re-exported here).
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.blobs.digests import DIGEST
from runyard.core.liveness import refresh
from runyard.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from runyard.fsio import fsync_dir
from runyard.model import RunRecord, Stage
from runyard.recording import bundle as fmt
from runyard.recording.bagzip import BagZipWriter
from runyard.recording.crate import CrateFile, CrateRun, crate_metadata
from runyard.recording.importing import ImportReport, import_bundle
from runyard.recording.manifest import Manifest, decode
from runyard.recording.versions import get_version, runs_of

if TYPE_CHECKING:
    from runyard.core.context import StoreContext

__all__ = ["ImportReport", "export_version", "import_bundle"]

BLOBS = "runyard/blobs/"


@dataclass(frozen=True)
class Payload:
    """A payload file whose content is a blob."""

    path: str
    digest: str
    size: int
    mode: int = 0o644
    when: float | None = None


@dataclass
class Plan:
    """What an export writes, and where."""

    version: fmt.RunLog
    runs: list[fmt.RunLog]
    manifest_bytes: bytes
    payload: list[Payload] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)  # digest -> first payload path
    files: list[CrateFile] = field(default_factory=list)
    crate_runs: list[CrateRun] = field(default_factory=list)
    license: str | None = None

    def add(self, item: Payload) -> str:
        _check_name(item.path)
        self.payload.append(item)
        self.placed.setdefault(item.digest, item.path)
        return item.path

    def blob_path(self, digest: str, size: int) -> str:
        """Where the blob ``digest`` is in the bag, adding it under ``runyard/blobs/``."""
        found = self.placed.get(digest)
        return found if found is not None else self.add(Payload(BLOBS + digest, digest, size))


def export_version(context: StoreContext, ref: str, out: Path, *,
                   license: str | None = None) -> Path:
    """Write version ``ref`` and all its recorded runs to the new zip ``out``; ``out``.

    ``license``: the work's license (an SPDX URL, say) for the crate; without it the crate
    says that none was stated (RO-Crate 1.1 requires the property)."""
    out = Path(out)
    _refuse_existing(out)
    version = get_version(context, ref)
    plan = plan_export(context, version)
    plan.license = license
    temp = out.parent / f".{out.name}.{uuid.uuid4().hex}.part"
    try:
        write_bag(context, plan, temp)
        _link(temp, out)
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        with suppress(OSError):
            temp.unlink(missing_ok=True)
    return out


def _refuse_existing(out: Path) -> None:
    if out.exists() or out.is_symlink():
        raise ConflictError(f"{out} already exists; export to a new path (or remove it first)")
    if not out.parent.is_dir():
        raise NotFoundError(f"no folder {out.parent} to write {out.name} into; create it first")


def _link(temp: Path, out: Path) -> None:
    """Put ``temp`` at ``out`` unless something is there now (a link never replaces)."""
    try:
        os.link(temp, out)
    except FileExistsError:
        raise ConflictError(f"{out} already exists; export to a new path") from None
    except OSError:  # a file system without hard links: the check just made must do
        _refuse_existing(out)
        os.replace(temp, out)
    fsync_dir(out.parent)


# -- planning -------------------------------------------------------------------------------
def plan_export(context: StoreContext, version: RunRecord) -> Plan:
    """Every file of the export of ``version``, its runs read from the store."""
    store = context.store
    runs = [refresh(store, run) for run in runs_of(context, version)]
    busy = next((run for run in runs if run.status.is_active), None)
    if busy is not None:
        raise ConflictError(f"run {busy.name} of version {version.name} is still "
                            f"{busy.status.value}; wait for it to end (or cancel it) and "
                            "export again")
    with context.blobs.open(version.internals["manifest"], verify=True) as handle:
        raw = handle.read()
    manifest = decode(raw, f"the manifest of version {version.name}")
    plan = Plan(fmt.read_log(store, version), [fmt.read_log(store, r) for r in runs], raw)
    _plan_workspace(plan, manifest)
    for log in plan.runs:
        _plan_run(plan, manifest, log)
    _plan_referenced(context, plan)
    return plan


def _plan_workspace(plan: Plan, manifest: Manifest) -> None:
    when = plan.version.run.created
    for path, entry in sorted(manifest.items()):
        if entry.is_link:  # kept only as its blob: a zip link would not be imported
            plan.blob_path(entry.sha256, entry.size)
            continue
        where = plan.add(Payload("workspace/" + path, entry.sha256, entry.size,
                                 entry.mode & 0o777, when))
        plan.files.append(CrateFile(where, entry.size, entry.sha256))


def _plan_run(plan: Plan, manifest: Manifest, log: fmt.RunLog) -> None:
    run = log.run
    folder = f"runs/{run.name}/"
    outputs, inputs = [], []
    for artifact in log.artifacts:
        if artifact.stage is Stage.PUT:
            where = plan.add(Payload(folder + artifact.name, artifact.hash, artifact.size,
                                     0o644, run.ended))
            outputs.append(CrateFile(where, artifact.size, artifact.hash))
            continue
        entry = manifest.get(artifact.name)
        if entry is not None and not entry.is_link and entry.sha256 == artifact.hash:
            inputs.append("workspace/" + artifact.name)
    plan.crate_runs.append(CrateRun(run, folder, inputs, outputs, _entrypoint(run, manifest)))


def _entrypoint(run: RunRecord, manifest: Manifest) -> str | None:
    """The version's file the run executed: the first word of its command naming one."""
    argv = run.internals.get("entrypoint")
    for word in argv if isinstance(argv, list) else ():
        path = str(word).removeprefix("./")
        entry = manifest.get(path)
        if entry is not None and not entry.is_link:
            return "workspace/" + path
    return None


def _plan_referenced(context: StoreContext, plan: Plan) -> None:
    """Blobs the runs name that are not placed yet: catalog entries (the version's
    ``manifest.json`` is ``runyard/manifest.json``), and any digest in a run's internals or
    environment that the blob store holds (an environment's lock)."""
    manifest_digest = plan.version.run.internals["manifest"]
    plan.placed.setdefault(manifest_digest, fmt.MANIFEST_PATH)
    for log in [plan.version, *plan.runs]:
        for artifact in log.artifacts:
            plan.blob_path(artifact.hash, artifact.size)
        for digest in sorted(_digests([log.run.internals, log.run.environment])):
            if digest not in plan.placed and context.blobs.exists(digest):
                plan.blob_path(digest, context.blobs.size(digest))


def _digests(docs: list[Any]) -> set[str]:
    found: set[str] = set()
    stack = list(docs)
    while stack:
        item = stack.pop()
        if isinstance(item, str) and len(item) == 64 and DIGEST.match(item):
            found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _check_name(path: str) -> None:
    """Refuse at export a name the import would refuse (see ``recording.safezip``)."""
    if "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise ValidationError(f"cannot export the file {path!r}: its name holds a backslash "
                              "or an empty, '.' or '..' part; rename it and make a new version")


# -- writing --------------------------------------------------------------------------------
def write_bag(context: StoreContext, plan: Plan, path: Path) -> None:
    """Write the bag of ``plan`` as a zip at ``path`` (fsynced)."""
    writer = BagZipWriter(path)
    try:
        for folder in _folders([p.path for p in plan.payload] + [fmt.PATH]):
            writer.add_folder(folder, when=plan.version.run.created)
        for item in plan.payload:
            with context.blobs.open(item.digest) as source:
                sha256 = writer.add_stream(item.path, source, item.size, mode=item.mode,
                                           when=item.when)
            if sha256 != item.digest:
                raise IntegrityError(f"blob {item.digest} ({item.path}) hashes to {sha256}: "
                                     "the blob store is damaged; nothing was exported")
        _write_metadata(writer, plan)
    except BaseException:
        writer.abort()
        raise
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _write_metadata(writer: BagZipWriter, plan: Plan) -> None:
    version = plan.version.run
    files = {item.path: item.digest for item in plan.payload}
    files[fmt.MANIFEST_PATH] = version.internals["manifest"]
    data = fmt.encode(fmt.Bundle(plan.version, plan.runs, files))
    writer.add_bytes(fmt.MANIFEST_PATH, plan.manifest_bytes, when=version.created)
    writer.add_bytes(fmt.PATH, data, when=version.created)
    extras = [CrateFile(p.path, p.size, p.digest, "a blob the runs name, by its SHA-256")
              for p in plan.payload if p.path.startswith(BLOBS)]
    extras += [
        CrateFile(fmt.MANIFEST_PATH, len(plan.manifest_bytes), version.internals["manifest"],
                  "the version's manifest: path, SHA-256, size and mode of every file"),
        CrateFile(fmt.PATH, len(data), _sha256(data),
                  "the version and its runs as runyard keeps them, for `runyard import`"),
    ]
    crate = crate_metadata(version, plan.files, plan.crate_runs, extras, plan.license)
    writer.add_bytes(fmt.CRATE_PATH, json.dumps(crate, indent=1, ensure_ascii=False)
                     .encode("utf-8"), when=version.created)
    writer.close({"External-Identifier": version.id,
                  "External-Description": f"runyard version {version.name} with "
                  f"{len(plan.runs)} recorded runs (RO-Crate 1.1, Process Run Crate 0.5)"})


def _folders(paths: list[str]) -> list[str]:
    """Every folder of ``paths``, parents first."""
    found = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    return sorted(found)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
