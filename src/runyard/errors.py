"""The one exception tree of runyard.

Every error a user can cause is a ``RunyardError``; its message is one line that says what was
wrong and what to do. The CLI prints that line and exits non-zero, with no traceback.

    RunyardError
    ├── ValidationError          a name, folder, tag, artifact path or value is malformed
    ├── ConfigError              a store URL, store type or config file is wrong
    ├── MissingDependencyError   an optional package is not installed
    ├── NotFoundError
    │   ├── RunNotFound
    │   ├── ConfigNotFound       no saved runtime configuration of that name
    │   ├── StepNotFound
    │   ├── BlobNotFound
    │   ├── CodespecNotFound
    │   ├── BufferNotFound
    │   ├── VersionNotFound      no complete workspace version of that id or name
    │   └── TokenNotFound        no API token of that name
    ├── ConflictError
    │   ├── NameTaken
    │   ├── RunExists
    │   └── IllegalTransition
    ├── IntegrityError           stored data does not match its hash
    ├── StoreError               a backend failed (I/O, database); wraps the cause
    │   └── StoreReadOnly        the store cannot be written by this user (reads still work)
    ├── TrackingError            the tracking client was used out of order
    │   └── DataLost             logged data could not be written; counts it
    └── WorkflowError            a workflow run could not be defined, run or read
        ├── WorkflowDefinitionError  the workflow cannot be traced (empty, cyclic, bad call)
        ├── WorkflowNotFinished  results asked for before the run ended
        ├── WorkflowFailed       the run failed, was canceled or lost; says why
        └── RuntimeUnavailable   a runtime could not start or was used after shutdown
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


class ConfigNotFound(NotFoundError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"no runtime configuration named {name!r}; known: {', '.join(known)} "
            "(see `runyard config list`)"
        )


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


class StoreReadOnly(StoreError):
    """The store's files or database cannot be written by this user; reading still works."""

    def __init__(self, where: object, why: object) -> None:
        super().__init__(
            f"the store at {where} is read-only for this user ({why}); read commands work, "
            "but to change it run as its owner or copy it (`runyard store copy`)"
        )


class TrackingError(RunyardError):
    """The tracking client was used out of order: before ``init``, after ``close``."""

    exit_code = 4


class DataLost(TrackingError):
    """Some logged data could not be written to the store; the message counts what."""

    def __init__(self, message: str, lost: dict[str, int]) -> None:
        super().__init__(message)
        self.lost = lost


class WorkflowError(RunyardError):
    """A workflow run could not be defined, run or read."""


class WorkflowDefinitionError(WorkflowError, ValidationError):
    """The workflow cannot be traced into a DAG: empty, cyclic, or a non-task use of a result."""

    exit_code = 2


class WorkflowNotFinished(WorkflowError):
    """Results were asked for (without waiting, or past a timeout) before the run ended."""

    exit_code = 4


class WorkflowFailed(WorkflowError):
    """The workflow run failed, was canceled or was lost; the message says why."""


class RuntimeUnavailable(WorkflowError):
    """A runtime could not be started, was used after shutdown, or cannot take a callable."""


class CodespecNotFound(NotFoundError):
    def __init__(self, ref: str, hint: str = "see `runyard codespec list`") -> None:
        super().__init__(f"no codespec {ref!r}; {hint}")
        self.ref = ref


class BufferNotFound(NotFoundError):
    def __init__(self, buffer_id: str) -> None:
        super().__init__(f"no buffer {buffer_id!r}; see `runyard buffer list`")
        self.buffer_id = buffer_id


class TokenNotFound(NotFoundError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no token named {name!r}; see `runyard server token list`")
        self.name = name


class VersionNotFound(NotFoundError):
    def __init__(self, ref: str, why: str = "") -> None:
        detail = f" ({why})" if why else ""
        super().__init__(f"no version {ref!r}{detail}; see `runyard version list`")
        self.ref = ref


def error_class(name: str) -> type[RunyardError] | None:
    """The ``RunyardError`` class of this module named ``name`` (an error answer's ``type``)."""
    found = globals().get(name)
    return found if isinstance(found, type) and issubclass(found, RunyardError) else None
