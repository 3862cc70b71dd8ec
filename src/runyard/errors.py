"""The one exception tree of runyard.

Every error a user can cause is a ``RunyardError``; its message is one line that says what was
wrong and what to do. The CLI prints that line and exits non-zero, with no traceback.

    RunyardError
    ├── ValidationError          a name, folder, tag, artifact path or value is malformed
    ├── ConfigError              a store URL, store type or config file is wrong
    ├── MissingDependencyError   an optional package is not installed
    ├── NotFoundError
    │   ├── RunNotFound
    │   ├── StepNotFound
    │   └── BlobNotFound
    ├── ConflictError
    │   ├── NameTaken
    │   ├── RunExists
    │   └── IllegalTransition
    ├── IntegrityError           stored data does not match its hash
    └── StoreError               a backend failed (I/O, database); wraps the cause
"""

from __future__ import annotations


class RunyardError(Exception):
    """Root of every runyard error. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ValidationError(RunyardError, ValueError):
    """A value given by the user is malformed."""

    exit_code = 2


class ConfigError(RunyardError):
    """A store URL, store type or configuration file is wrong."""

    exit_code = 2


class MissingDependencyError(RunyardError, ImportError):
    """An optional dependency is missing; the message names the install command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'runyard[{extra}]'"
        )


class NotFoundError(RunyardError, LookupError):
    """Something asked for does not exist."""

    exit_code = 3


class RunNotFound(NotFoundError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no run with id or name {ref!r}; see `runyard run list`")
        self.ref = ref


class StepNotFound(NotFoundError):
    def __init__(self, run_id: str, step: str) -> None:
        super().__init__(f"run {run_id} has no step {step!r}")


class BlobNotFound(NotFoundError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"no blob {digest} in the blob store")


class ConflictError(RunyardError):
    """The request conflicts with the current state."""

    exit_code = 4


class NameTaken(ConflictError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a run named {name!r} already exists; choose another name")
        self.name = name


class RunExists(ConflictError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"a run with id {run_id} already exists")
        self.run_id = run_id


class IllegalTransition(ConflictError):
    def __init__(self, run_id: str, old: str, new: str, allowed: list[str]) -> None:
        options = ", ".join(allowed) if allowed else "nothing (it is final)"
        super().__init__(
            f"run {run_id} cannot go from {old} to {new}; from {old} it can go to {options}"
        )
        self.old, self.new = old, new


class IntegrityError(RunyardError):
    """Stored bytes do not match their recorded hash."""


class StoreError(RunyardError):
    """A store backend failed; the cause is chained."""
