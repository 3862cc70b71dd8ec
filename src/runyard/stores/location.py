"""Where the store is: URL parsing, the ``.runyard`` home and the ``runyard.yaml`` config file.

Resolution order for the store URL: an explicit URL (``--store``), ``RUNYARD_STORE``, the
``run_log_store`` section of the config file (``RUNYARD_CONFIG`` or ``runyard.yaml`` found by
walking up from the working directory), else ``sqlite:///<home>/runyard.db`` where the home is the
nearest ``.runyard`` folder above the working directory (like ``.git``) or ``./.runyard``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError

HOME_DIR = ".runyard"
CONFIG_FILE = "runyard.yaml"
SCHEMES = ("memory", "file", "chunked", "sqlite", "postgresql", "postgres", "http", "https")
TYPES = {
    "buffered": "memory",
    "memory": "memory",
    "file-system": "file",
    "chunked-fs": "chunked",
    "sqlite": "sqlite",
    "postgres": "postgresql",
    "postgresql": "postgresql",
}


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    target: str  # a filesystem path, a memory name, or the whole URL for postgresql
    url: str


def config_home() -> Path:
    """The user's runyard configuration folder: ``RUNYARD_CONFIG_HOME``, else
    ``$XDG_CONFIG_HOME/runyard`` (``~/.config/runyard``): saved runtime configurations,
    server credentials, local Ray clusters' state."""
    explicit = os.environ.get("RUNYARD_CONFIG_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "runyard"


def find_upwards(name: str, start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / name
        if candidate.exists():
            return candidate
    return None


def home(start: Path | None = None) -> Path:
    """The nearest ``.runyard`` folder above ``start``, else ``<start>/.runyard`` (not created)."""
    found = find_upwards(HOME_DIR, start)
    if found is not None and found.is_dir():
        return found
    return (start or Path.cwd()).resolve() / HOME_DIR


def parse_url(url: str) -> StoreURL:
    if "~" in url:  # depends on $HOME: parsed each time
        return _parse_url(url)
    return _parse_url_cached(url)


@functools.lru_cache(maxsize=64)
def _parse_url_cached(url: str) -> StoreURL:
    return _parse_url(url)  # a pure function of the URL (an error is never cached)


def _parse_url(url: str) -> StoreURL:
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigError(
            f"unknown store URL {url!r}; use memory://, file:///DIR, chunked:///DIR, "
            "sqlite:///PATH, postgresql://USER@HOST:PORT/DB or http(s)://HOST:PORT"
        )
    if scheme in ("postgresql", "postgres"):
        return StoreURL("postgresql", "postgresql:" + rest, url)
    if scheme in ("http", "https"):  # a runyard server; the target is the whole URL
        return StoreURL(scheme, f"{scheme}:{rest}", url)
    target = rest[2:] if rest.startswith("//") else rest
    if scheme != "memory":
        if target in ("", "/"):
            raise ConfigError(f"store URL {url!r} names no path; write it as {scheme}:///PATH")
        target = str(Path(target).expanduser())
    return StoreURL(scheme, target, url)


def config_path(start: Path | None = None) -> Path | None:
    explicit = os.environ.get("RUNYARD_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"RUNYARD_CONFIG names {explicit!r}, which is not a file")
        return path
    return find_upwards(CONFIG_FILE, start)


def load_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}; fix it") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); "
                          "save it as UTF-8") from None
    except RecursionError:
        raise ConfigError(f"config file {path} is nested too deeply; fix it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, like `run_log_store: ...`")
    return data


def url_from_section(section: Any, base: Path) -> str:
    """Turn ``run_log_store: {type: chunked-fs, config: {log_folder: ...}}`` into a URL."""
    if not isinstance(section, dict):
        raise ConfigError("run_log_store must be a mapping with a `type` (or a `url`)")
    if "url" in section:
        return str(section["url"])
    kind = section.get("type")
    if kind not in TYPES:
        names = ", ".join(sorted(k for k in TYPES if k not in ("memory", "postgresql")))
        raise ConfigError(f"unknown run_log_store type {kind!r}; use one of: {names}")
    options = section.get("config") or {}
    if not isinstance(options, dict):
        raise ConfigError("run_log_store.config must be a mapping")
    scheme = TYPES[kind]
    if scheme == "memory":
        return "memory://"
    if scheme == "postgresql":
        if "url" not in options:
            raise ConfigError("a postgres run_log_store needs config.url: postgresql://...")
        return str(options["url"])
    if scheme == "sqlite":
        default = str(home(base) / "runyard.db")
        return "sqlite://" + str((base / str(options.get("path", default))).resolve())
    folder = options.get("log_folder", ".run_log_store")
    return f"{scheme}://" + str((base / str(folder)).resolve())


def resolve_url(explicit: str | None = None, start: Path | None = None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("RUNYARD_STORE")
    if env:
        return env
    path = config_path(start)
    if path is not None:
        section = load_config(path).get("run_log_store")
        if section is not None:
            return url_from_section(section, path.parent)
    return "sqlite://" + str(home(start) / "runyard.db")


BLOBS_ENV = "RUNYARD_BLOBS"


def blob_location(url: str, start: Path | None = None) -> Path:
    """Where the blobs of the store at ``url`` go. A store with a folder keeps them beside its
    files (so the folder holds the whole store). One without (PostgreSQL) takes them from
    configuration: ``RUNYARD_BLOBS``, else ``blobs:`` in the config file; with neither, a
    ConfigError says to set one (never the working directory). ``memory://`` uses them too,
    else the home. Callers use the store context (``runyard.core.context``), which asks once."""
    parsed = parse_url(url)
    if parsed.scheme in ("file", "chunked", "sqlite"):
        return _blob_root_beside(parsed)
    configured = configured_blobs(start)
    if configured is not None:
        return configured
    if parsed.scheme == "memory":
        return home(start) / "blobs"
    if parsed.scheme in ("http", "https"):  # a local cache of the server's blobs
        return server_cache(url)
    raise ConfigError(
        f"the store {redact_url(url)} has no local folder for its blobs: set one with "
        f"`blobs: /PATH` in {CONFIG_FILE} or the {BLOBS_ENV} environment variable"
    )


def configured_blobs(start: Path | None = None) -> Path | None:
    """The blob folder set by ``RUNYARD_BLOBS`` or by ``blobs:`` in the config file (relative
    to the file's folder), if either is set."""
    env = os.environ.get(BLOBS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    path = config_path(start)
    value = None if path is None else load_config(path).get("blobs")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"`blobs` in {path} must be a folder path, like `blobs: /data/blobs`")
    assert path is not None
    return (path.parent / Path(value).expanduser()).resolve()


@functools.lru_cache(maxsize=64)
def _blob_root_beside(parsed: StoreURL) -> Path:
    """The blob folder of a file-based store: a pure function of its parsed URL."""
    target = Path(parsed.target)
    return (target if parsed.scheme in ("file", "chunked") else target.parent) / "blobs"


def server_cache(url: str) -> Path:
    """The user's cache folder for the blobs of the server at ``url`` (one per host:port):
    ``$XDG_CACHE_HOME/runyard/blobs/HOST_PORT``, else under ``~/.cache``."""
    import re
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"{parts.hostname or 'server'}_{parts.port or (443 if parts.scheme == 'https' else 80)}"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "runyard" / "blobs" / re.sub(r"[^A-Za-z0-9.-]", "_", where)


def redact_url(url: str) -> str:
    """``url`` with any password (in the user part or a ``password=`` query) shown as ``***``,
    and any token (the user part of an ``http(s)://`` URL, a ``token=`` query) too: the one
    form a store URL takes in messages, records and on screen."""
    import re

    url = re.sub(r"(?i)^(https?://)[^/?#]*@", r"\1***@", url)
    url = re.sub(r"^([A-Za-z][\w+.-]*://[^:/@?#]*):[^/?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&](?:password|token)=)[^&#]*", r"\1***", url)
