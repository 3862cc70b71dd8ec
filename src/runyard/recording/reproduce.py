"""``reproduce``: run a recorded run again from its version and environment, and compare.

A reviewer's question is "do I get the same files?", so the answer is per file: each output
of the first run is ``identical`` (same SHA-256), ``differ``s, or is ``missing`` from the new
run, and each output only the new run has is ``new``. The new run is an ordinary recorded run
of the same version, entrypoint, executor and network setting, whose ``origin`` is the first;
its environment is installed from the first run's lock (the packages it had, pinned with their
hashes: the cached environment if it was installed from that very lock, else one built from
it), and the report says whether the locks are the same. Only the store's records and blobs
are needed, so a run imported from an export reproduces like one recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import ValidationError
from runyard.model import Kind, RunRecord, Stage
from runyard.recording.record import record
from runyard.recording.versions import find_workspace, get_version

if TYPE_CHECKING:
    from runyard.core.context import StoreContext
    from runyard.recording.jobrun import Stream

IDENTICAL, DIFFER, MISSING, NEW = "identical", "differ", "missing", "new"


@dataclass
class ReproduceReport:
    """How the new run's outputs compare with the first's, path by path."""

    original: RunRecord
    run: RunRecord
    files: dict[str, str] = field(default_factory=dict)  # path: identical|differ|missing|new
    same_environment: bool = True

    @property
    def differs(self) -> bool:
        """Whether anything differs: a file, the status, or the environment's lock."""
        return (any(v != IDENTICAL for v in self.files.values()) or not self.same_environment
                or self.run.status is not self.original.status)

    def to_json(self) -> dict[str, Any]:
        return {"original": {"id": self.original.id, "name": self.original.name,
                             "status": self.original.status.value},
                "run": {"id": self.run.id, "name": self.run.name,
                        "status": self.run.status.value,
                        "status_reason": self.run.status_reason},
                "identical": not self.differs, "same_environment": self.same_environment,
                "files": dict(sorted(self.files.items()))}


def reproduce(context: StoreContext, run_ref: str, *, executor: str | None = None,
              workspace: Path | None = None, stream: Stream | None = None) -> ReproduceReport:
    """Record run ``run_ref`` again (see the module docstring); the comparison."""
    first = context.store.find_run(run_ref)
    if first.kind is not Kind.RECORDED:
        raise ValidationError(f"run {first.name} is a {first.kind.value} run; only recorded "
                              "runs can be reproduced (see `runyard record`)")
    version = get_version(context, str(first.internals.get("version") or ""))
    internals, built = first.internals, bool(first.environment.get("built", True))
    lock = first.environment.get("lock") if built else None
    again = record(context, _workspace(workspace, version), list(internals["entrypoint"]),
                   version=version.id, network=bool(internals.get("network")),
                   executor=executor or str(internals.get("executor") or "sandbox"),
                   use_env=built, stream=stream, origin=first.id,
                   pinned=lock if isinstance(lock, str) else None)
    report = ReproduceReport(first, again, compare(outputs_of(context, first),
                                                   outputs_of(context, again)))
    report.same_environment = first.environment.get("lock") == again.environment.get("lock")
    return report


def _workspace(given: Path | None, version: RunRecord) -> Path:
    """Where the new run's ``runs/`` folder goes: the folder given, else the version's
    workspace if it is on this machine, else the working directory's."""
    if given is not None:
        return find_workspace(given)
    recorded = version.internals.get("workspace")
    if isinstance(recorded, str) and Path(recorded).is_dir():
        return Path(recorded)
    return find_workspace(None)


def outputs_of(context: StoreContext, run: RunRecord) -> dict[str, str]:
    """A recorded run's outputs: path → digest."""
    return {a.name: a.hash for a in context.store.list_artifacts(run.id)
            if a.stage is Stage.PUT}


def compare(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """Per path: identical, differ, missing (only before) or new (only after)."""
    result = {path: (IDENTICAL if after.get(path) == digest else
                     MISSING if path not in after else DIFFER)
              for path, digest in before.items()}
    result.update({path: NEW for path in after if path not in before})
    return result
