"""Validation of user-given names, folders, tags, artifact paths and documents: one clear error
each.

Patterns are matched with ``fullmatch``: ``$`` also matches before a final newline, so
``re.match(r"^name$", "name\\n")`` would let a trailing newline into a name. Documents
(metadata, parameters) are walked without recursion and refused past ``MAX_DEPTH`` levels, where
a JSON encoder or a copy would raise ``RecursionError`` halfway through a write.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping

from runyard.errors import ValidationError

MAX_NAME = 128
MAX_FOLDER = 512
MAX_TAG = 256
MAX_ARTIFACT = 1024
MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1  # steps are stored as signed 64-bit integers
MAX_DEPTH = 100  # levels of nesting in metadata and parameters; far below Python's recursion

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\- ]*")
_DRIVE = re.compile(r"[A-Za-z]:")


def run_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError("a run name must be a non-empty string")
    if len(name) > MAX_NAME:
        raise ValidationError(f"run name is {len(name)} characters long; the limit is {MAX_NAME}")
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"invalid run name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def folder(path: str) -> str:
    """Normalise a folder like ``/a/b`` (a trailing slash is dropped; ``/`` is the root)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValidationError(f"invalid folder {path!r}: a folder starts with '/', like /a/b")
    if len(path) > MAX_FOLDER:
        raise ValidationError(f"folder is {len(path)} characters long; the limit is {MAX_FOLDER}")
    parts = [p for p in path.split("/")[1:]]
    if parts and parts[-1] == "":
        parts.pop()
    for part in parts:
        if part in ("", ".", "..") or not _SEGMENT.fullmatch(part):
            raise ValidationError(
                f"invalid folder {path!r}: segment {part!r} is not allowed "
                "(no empty, '.' or '..' segments; letters, digits, '.', '_', '-', space)"
            )
    return "/" + "/".join(parts)


def tag(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("a tag must be a non-empty string")
    if len(value) > MAX_TAG or not _one_line(value):
        raise ValidationError(
            f"invalid tag {value[:40]!r}: one line of at most {MAX_TAG} characters"
        )
    return value


def artifact_name(name: str) -> str:
    """A relative path with no ``..`` segments: where the artifact lands when fetched."""
    if not isinstance(name, str) or not name:
        raise ValidationError("an artifact name must be a non-empty string")
    if len(name) > MAX_ARTIFACT or "\x00" in name:
        raise ValidationError(f"invalid artifact name {name[:40]!r}: too long or contains NUL")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ValidationError(f"invalid artifact name {name!r}: it must be a relative path")
    if any(part in ("..", "") for part in name.replace("\\", "/").split("/")):
        raise ValidationError(
            f"invalid artifact name {name!r}: no '..' or empty segments allowed"
        )
    return name


def step_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_ARTIFACT or "\x00" in name:
        raise ValidationError(f"invalid step name {name!r}: a non-empty string without NUL")
    return name


def metric_value(name: str, value: object) -> float:
    """Metrics are real numbers stored as floats; booleans and non-numbers are refused.

    NaN and ±inf are accepted and stored as they are: a diverging loss is worth recording.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"metric {name!r} has non-numeric value {value!r}; log a number")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64 (about 1.8e308)
        raise ValidationError(
            f"metric {name!r} has a value too large for a float ({short(value)}); "
            "log it scaled or as its logarithm"
        ) from None


def metric_step(name: str, step: object) -> int | None:
    """A stored step is ``None`` or a whole number that fits an int64 (the tracking client
    takes only steps from 0 up)."""
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValidationError(
            f"metric {name!r} has step {short(step)}; steps are whole numbers or None")
    if not MIN_STEP <= int(step) <= MAX_STEP:
        raise ValidationError(
            f"metric {name!r} has step {short(step)}, a step beyond 64-bit integers")
    return int(step)


def metric_time(name: str, time: object) -> float:
    """A metric's time is finite epoch seconds."""
    try:
        seconds = math.nan if isinstance(time, bool) else float(time)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not isinstance(time, numbers.Real) or not math.isfinite(seconds):
        raise ValidationError(f"metric {name!r} has time {short(time)}; log epoch seconds")
    return seconds


def short(value: object) -> str:
    """``repr(value)`` cut to about 40 characters, for an error message."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.set_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else "?"
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def metric_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME * 2 or not _one_line(name):
        raise ValidationError(f"invalid metric name {name!r}: one non-empty line")
    return name


def _one_line(text: str) -> bool:
    """No line break and no NUL (which PostgreSQL's text cannot hold)."""
    return "\n" not in text and "\r" not in text and "\x00" not in text


def nesting(value: object, what: str) -> None:
    """Refuse ``value`` if it nests lists and mappings more than ``MAX_DEPTH`` deep (or
    contains itself); walked with a stack, so the check itself cannot recurse too deeply."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ValidationError(
                f"{what} is nested more than {MAX_DEPTH} levels deep (or contains itself); "
                "flatten it"
            )
        stack.extend((child, depth + 1) for child in children)
