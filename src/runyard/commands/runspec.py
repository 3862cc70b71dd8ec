"""Run specifications: a ``-f`` file and command-line flags, checked into one ``RunSpec``.

The file reads ``job: {codespec, buffers, tags, replicas}`` and ``timeoutSeconds``; the
codespec is a name, ``name/versions/N`` or an inline spec. Flags override the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runyard.commands.codespec import Codespec, from_mapping, load_yaml, parse_duration
from runyard.commands.registry import Registry, find_codespec, parse_tags, split_ref
from runyard.errors import ValidationError
from runyard.processes import executors

MAX_REPLICAS = 64
FILE_KEYS = frozenset({"job", "timeoutSeconds", "executor"})
JOB_KEYS = frozenset({"codespec", "buffers", "tags", "replicas"})


@dataclass(frozen=True)
class RunSpec:
    codespec: Codespec
    codespec_ref: str | None  # name/versions/N, or None for an inline codespec
    buffers: dict[str, str] = field(default_factory=dict)  # parameter -> given buffer id
    tags: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    timeout_s: float | None = None
    executor: str = "local"


@dataclass(frozen=True)
class Flags:
    """What the command line said; ``None`` and empty mean "not given"."""

    file: str | None = None
    codespec: str | None = None
    version: int | None = None
    buffers: Sequence[str] = ()
    replicas: int | None = None
    timeout: str | None = None
    tags: Sequence[str] = ()
    executor: str | None = None


def build(registry: Registry, flags: Flags) -> RunSpec:
    """The checked run spec: the file (if any) with the flags laid over it."""
    return build_from(registry, read_file(flags.file) if flags.file else {}, flags)


def build_from(registry: Registry, doc: Mapping[str, Any], flags: Flags) -> RunSpec:
    """The checked run spec of ``doc`` (what a ``-f`` file holds, already read: ``job:`` and
    ``timeoutSeconds``; the server builds one from a request) with ``flags`` laid over it."""
    job = doc.get("job") or {}
    spec, ref = _codespec(registry, flags, job.get("codespec"))
    buffers = {**_file_buffers(job.get("buffers")), **buffer_flags(flags.buffers)}
    check_buffers(registry, spec, buffers)
    return RunSpec(
        codespec=spec,
        codespec_ref=ref,
        buffers=buffers,
        tags={**parse_tags(_mapping(job.get("tags"), "job.tags")), **parse_tags(flags.tags)},
        replicas=_replicas(flags.replicas if flags.replicas is not None else job.get("replicas")),
        timeout_s=_timeout(flags.timeout, doc.get("timeoutSeconds")),
        executor=choose_executor(flags.executor or doc.get("executor")),
    )


def read_file(path: str) -> dict[str, Any]:
    doc = load_yaml(path, "run spec")
    if not isinstance(doc, dict) or not isinstance(doc.get("job"), dict):
        raise ValidationError(f"run spec {path!r} must be a mapping with a `job:` mapping")
    unknown = sorted(set(doc) - FILE_KEYS) or sorted(set(doc["job"]) - JOB_KEYS)
    if unknown:
        raise ValidationError(f"unknown key {unknown[0]!r} in run spec {path!r}; use job: "
                              f"{{{', '.join(sorted(JOB_KEYS))}}} and timeoutSeconds")
    return doc


def _codespec(registry: Registry, flags: Flags, from_file: Any) -> tuple[Codespec, str | None]:
    chosen = flags.codespec if flags.codespec is not None else from_file
    if isinstance(chosen, dict):
        if flags.version is not None:
            raise ValidationError("--version needs a codespec name, not an inline codespec")
        return from_mapping({"name": "inline", **chosen}), None
    if not isinstance(chosen, str) or not chosen:
        raise ValidationError("no codespec given: use --codespec NAME or `codespec:` in -f FILE")
    if flags.version is not None:
        name, version = split_ref(chosen)
        if version is not None and version != flags.version:
            raise ValidationError(f"--version {flags.version} contradicts codespec {chosen!r}")
        chosen = f"{name}/versions/{flags.version}"
    found = find_codespec(registry, chosen)
    return found.spec, found.ref


def buffer_flags(pairs: Sequence[str]) -> dict[str, str]:
    """``name=ID`` pairs; a parameter given twice is an error."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, buffer_id = pair.partition("=")
        if not sep or not name or not buffer_id:
            raise ValidationError(f"invalid --buffer {pair!r}: write it as NAME=BUFFER_ID")
        if name in found:
            raise ValidationError(f"buffer {name!r} given twice; give each buffer once")
        found[name] = buffer_id
    return found


def _file_buffers(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in _mapping(value, "job.buffers").items()}


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{what} in the run spec must be a mapping")
    return value


def check_buffers(registry: Registry, spec: Codespec, given: Mapping[str, str]) -> None:
    """Every given buffer exists, names a parameter of the codespec, and is used once."""
    for name, buffer_id in given.items():
        if name not in spec.parameters:
            have = ", ".join(spec.parameters) or "no buffers"
            raise ValidationError(f"codespec {spec.name} has no buffer {name!r}; it has: {have}")
        registry.buffer(buffer_id)
    ids = list(given.values())
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValidationError(f"buffer {twice[0]} given twice; each parameter needs its own")


def _replicas(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLICAS:
        raise ValidationError(f"invalid replicas {value!r}: a whole number from 1 to "
                              f"{MAX_REPLICAS}")
    return value


def _timeout(flag: str | None, from_file: Any) -> float | None:
    if flag is not None:
        return parse_duration(flag)
    return None if from_file is None else parse_duration(from_file)


def choose_executor(explicit: Any = None) -> str:
    """``--executor``, else ``RUNYARD_EXECUTOR``, else ``commands.executor`` in runyard.yaml,
    else ``local``."""
    if explicit is None:
        explicit = os.environ.get("RUNYARD_EXECUTOR") or _configured_executor()
    return executors.check_executor(str(explicit or "local"))


def _configured_executor() -> str | None:
    from runyard.stores.location import config_path, load_config

    path = config_path()
    if path is None:
        return None
    section = load_config(path).get("commands") or {}
    return section.get("executor") if isinstance(section, dict) else None
