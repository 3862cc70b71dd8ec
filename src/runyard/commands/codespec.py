"""Codespecs: named, versioned command specs, read from YAML and checked field by field.

A codespec names a ``command`` (a list of strings), optional ``image``, ``env`` and ``buffers``
(``inputs`` and ``outputs``, each a list of parameter names). Each buffer parameter reaches the
job as a named pipe whose path is in ``<NAME>_PIPE``. ``parse_duration`` reads ``300s``,
``1.5h`` and ``2h45m``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import ValidationError

FIELDS = frozenset({"name", "image", "buffers", "command", "env", "kind"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}\Z")
_PARAM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Codespec:
    name: str
    command: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def parameters(self) -> tuple[str, ...]:
        return self.inputs + self.outputs

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.image is not None:
            data["image"] = self.image
        data["buffers"] = {"inputs": list(self.inputs), "outputs": list(self.outputs)}
        data["command"] = list(self.command)
        if self.env:
            data["env"] = dict(sorted(self.env.items()))
        return data

    def digest(self) -> str:
        """A hash of the content: the same spec registered twice is one version."""
        import hashlib

        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def codespec_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"invalid codespec name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def from_mapping(data: object, name: str | None = None) -> Codespec:
    """A checked ``Codespec`` from parsed YAML; ``name`` overrides the one in ``data``."""
    if not isinstance(data, dict):
        raise ValidationError("a codespec must be a mapping with `name` and `command`")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown codespec field {unknown[0]!r}; use: {', '.join(sorted(FIELDS))}"
        )
    if data.get("kind", "job") != "job":
        raise ValidationError(f"codespec kind {data['kind']!r} is not supported; use `job`")
    inputs, outputs = _buffers(data.get("buffers"))
    image = data.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise ValidationError("codespec `image` must be a non-empty string")
    return Codespec(
        name=codespec_name(name if name is not None else data.get("name")),
        command=_command(data.get("command")),
        inputs=inputs,
        outputs=outputs,
        image=image,
        env=_env(data.get("env")),
    )


def _command(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(
            'codespec `command` must be a non-empty list of strings, like ["cat", "-n"]'
        )
    if not value[0]:
        raise ValidationError("codespec `command` starts with an empty program name")
    return tuple(value)


def _buffers(value: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, dict) or set(value) - {"inputs", "outputs"}:
        raise ValidationError("codespec `buffers` must be a mapping with `inputs` and `outputs`")
    inputs = _names(value.get("inputs"), "inputs")
    outputs = _names(value.get("outputs"), "outputs")
    seen: set[str] = set()
    for param in inputs + outputs:
        if param.lower() in seen:
            raise ValidationError(f"codespec buffer {param!r} is named twice")
        seen.add(param.lower())
    return inputs, outputs


def _names(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError(f"codespec buffers.{what} must be a list of names")
    for param in value:
        if not isinstance(param, str) or not _PARAM.match(param):
            raise ValidationError(
                f"invalid buffer name {param!r} in buffers.{what}: use letters, digits and '_', "
                "starting with a letter"
            )
    return tuple(value)


def _env(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("codespec `env` must be a mapping of NAME: value")
    env: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV.match(key):
            raise ValidationError(f"invalid environment variable name {key!r} in codespec `env`")
        if isinstance(val, bool | dict | list) or val is None:
            raise ValidationError(f"codespec env {key} must be a string or a number")
        env[key] = str(val)
    return env


def load_yaml(path: Path | str, what: str = "file") -> Any:
    """Parsed YAML from ``path``, or a one-line ``ValidationError`` naming the line."""
    import yaml

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValidationError(f"cannot read {what} {str(path)!r}: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed"
        raise ValidationError(f"{what} {str(path)!r} is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ValidationError(f"{what} {str(path)!r} is nested too deeply; flatten it") from None


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a number of seconds, or ``300s``, ``1.5h``, ``2h45m``, ``1d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        seconds = _text_duration(value.strip().lower())
    else:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise ValidationError(
            f"invalid duration {value!r}: use a positive time like 300s, 1.5h or 2h45m"
        )
    return seconds


def _text_duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return -1.0
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_seconds(seconds: float) -> str:
    """``1.5s``, ``300s``, ``2h45m``: how a timeout is shown in a status reason."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    rest, text = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        text += f"{count}{unit}" if count else ""
    return text
