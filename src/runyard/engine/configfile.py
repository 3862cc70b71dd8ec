"""The user's ``runtimes.yaml``: read it, and change it under a lock with an atomic write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError
from runyard.fsio import atomic_write_text

LOCK_TIMEOUT_S = 30.0


def read(path: Path) -> dict[str, Any]:
    """The saved configurations by name (none if the file does not exist)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix or remove it") from None
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"{path} is not valid YAML or is nested too deeply; fix or remove it"
                          ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("configs", {}), dict):
        raise ConfigError(f"{path} must hold a mapping `configs: {{NAME: {{runtime: ...}}}}`")
    return dict(data.get("configs") or {})


def update(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read, ``change`` and write back the configurations, holding the file's lock."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            write(path, change(read(path)))
    except Timeout:
        raise ConfigError(f"{path} stayed locked for {LOCK_TIMEOUT_S:.0f}s; try again") from None


def write(path: Path, configs: dict[str, Any]) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump({"configs": configs}, sort_keys=True), mode=0o600)
