"""Codespecs and buffers as command runs see them, over the store context's registry.

The registry lives in the run store (``runyard.core.registry``, the ``RunStore`` protocol's
registry part), so whoever shares a store shares its codespecs and buffers, whatever the
backend. Here a stored codespec's content becomes a checked ``Codespec``, and references
(``name``, ``name/versions/N``) and tags given by a user are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runyard.commands.codespec import Codespec, codespec_name, from_mapping
from runyard.core.registry import Registry
from runyard.errors import ValidationError
from runyard.model.registry import (
    COMPLETE,
    CREATED,
    FINAL_STATES,
    INCOMPLETE,
    WRITING,
    Buffer,
    Chunk,
    CodespecRecord,
)

__all__ = [
    "COMPLETE", "CREATED", "FINAL_STATES", "INCOMPLETE", "WRITING", "Buffer", "Chunk",
    "CodespecVersion", "Registry", "add_codespec", "find_codespec", "list_codespecs",
    "parse_tags", "split_ref",
]


@dataclass(frozen=True)
class CodespecVersion:
    """One registered version of a codespec, its content read into a ``Codespec``."""

    name: str
    version: int
    created: float
    spec: Codespec

    @property
    def ref(self) -> str:
        return f"{self.name}/versions/{self.version}"


def _version(record: CodespecRecord) -> CodespecVersion:
    return CodespecVersion(record.name, record.version, record.created,
                           from_mapping(record.spec, record.name))


def add_codespec(registry: Registry, spec: Codespec) -> tuple[CodespecVersion, bool]:
    """Register ``spec``: a new version unless the latest has the same content."""
    record, new = registry.add_codespec(spec.name, spec.digest(), spec.to_dict())
    return _version(record), new


def find_codespec(registry: Registry, ref: str) -> CodespecVersion:
    """The codespec ``name`` (its latest version) or ``name/versions/N``."""
    name, version = split_ref(ref)
    return _version(registry.codespec(name, version, ref))


# Registry records the MLflow-compatible API keeps its experiments in (not codespecs).
HIDDEN_PREFIX = "mlflow-experiment."


def list_codespecs(registry: Registry, name: str | None = None) -> list[CodespecVersion]:
    """The latest version of every codespec, or every version of ``name``."""
    found = registry.codespecs(None if name is None else codespec_name(name))
    return [_version(r) for r in found if not r.name.startswith(HIDDEN_PREFIX)]


def split_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name/versions/N`` as (name, N or None)."""
    name, sep, rest = ref.partition("/versions/")
    if not sep:
        if "/" in ref:
            raise ValidationError(f"invalid codespec reference {ref!r}: use NAME or "
                                  "NAME/versions/N")
        return codespec_name(ref), None
    if not (rest.isascii() and rest.isdigit()) or len(rest) > 9 or int(rest) < 1:  # ² is a digit
        raise ValidationError(f"invalid codespec version {rest!r} in {ref!r}: use a number "
                              "from 1, like hello/versions/2")
    return codespec_name(name), int(rest)


def parse_tags(pairs: Any) -> dict[str, str]:
    """``k=v`` strings (or a mapping from a spec file) as a dict of tags."""
    if isinstance(pairs, dict):
        items = [(str(k), "" if v is None else str(v)) for k, v in pairs.items()]
    else:
        items = []
        for pair in pairs:
            key, sep, value = str(pair).partition("=")
            if not sep:
                raise ValidationError(f"invalid tag {pair!r}: write it as key=value")
            items.append((key, value))
    for key, value in items:
        if not key.strip() or "\n" in key + value or len(key) + len(value) > 255:
            raise ValidationError(f"invalid tag {key!r}: a one-line key of at most 255 "
                                  "characters with its value")
    return dict(items)
