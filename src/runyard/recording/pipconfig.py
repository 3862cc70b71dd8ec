"""This machine's package index settings, as pip has them, handed on to ``uv``.

An environment must build from the indexes the machine is set up for (a local mirror, a folder
of wheels), offline included, and ``uv`` does not read pip's configuration. So pip's files are
read in pip's own order (global, site, user, ``PIP_CONFIG_FILE``; ``[install]`` over
``[global]``), then its ``PIP_*`` variables, and the index settings are passed to ``uv`` as
options, except those the user set for ``uv`` itself (``UV_*`` variables win, as ``uv`` reads
them).
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

SETTINGS = {  # pip's name: (uv's option, the UV_* variables that already say it)
    "index-url": ("--index-url", ("UV_INDEX_URL", "UV_DEFAULT_INDEX")),
    "extra-index-url": ("--extra-index-url", ("UV_EXTRA_INDEX_URL", "UV_INDEX")),
    "find-links": ("--find-links", ("UV_FIND_LINKS",)),
    "constraint": ("--constraint", ("UV_CONSTRAINT",)),
}
TRUE = ("1", "yes", "true", "on")


def config_files() -> list[Path]:
    """pip's configuration files, lowest precedence first."""
    xdg = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config"))
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg) if d]
    files += [Path("/etc/pip.conf"), Path(sys.prefix) / "pip.conf",
              home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    extra = os.environ.get("PIP_CONFIG_FILE")
    if extra and extra != os.devnull:
        files.append(Path(extra))
    return files


def pip_settings() -> dict[str, str]:
    """pip's effective settings (files, then ``PIP_*`` variables), by pip's option name."""
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        found: dict[str, str] = {}
    else:
        found = _from_files(config_files())
    for name in [*SETTINGS, "no-index"]:
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value is not None:
            found[name] = value
    return found


def _from_files(files: list[Path]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                found.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    return found


def index_options(*, constraints: bool = False) -> list[str]:
    """``uv pip`` options for pip's index settings (``constraints``: its constraint files
    too, for resolving)."""
    settings = pip_settings()
    options: list[str] = []
    if settings.get("no-index", "").lower() in TRUE and not os.environ.get("UV_NO_INDEX"):
        options.append("--no-index")
    for name, (option, variables) in SETTINGS.items():
        if name == "constraint" and not constraints:
            continue
        if any(os.environ.get(v) for v in variables):
            continue
        for value in settings.get(name, "").split():
            options += [option, value]
    return options
