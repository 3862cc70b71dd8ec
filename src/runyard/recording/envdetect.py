"""What a version says its environment needs, read the way repo2docker reads a repository.

A recorded run is only reproducible if the packages it ran with can be rebuilt, so the
environment is derived from the workspace's own files, found where repo2docker looks for them:
in ``binder/`` or ``.binder/`` when one exists (then the root's files are not looked at), else
in the root. Honoured: ``requirements.txt`` (``-r`` includes too), the ``[project]``
dependencies of ``pyproject.toml``, ``runtime.txt`` (``python-X.Y``) and the ``pip:`` part of
``environment.yml``. Everything else repo2docker would act on (``apt.txt``, a ``Dockerfile``,
``install.R``, conda packages, ``postBuild``…) is listed in ``not_honoured`` with the reason, so
``run show`` says what the run did *not* get instead of skipping it silently.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import ValidationError

CONFIG_FOLDERS = ("binder", ".binder")
RUNTIME = re.compile(r"^python-(\d+)\.(\d+)(?:\.\d+)?$")
NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(.*)$")
MAX_INCLUDES = 20
# repo2docker's other configuration files, and why runyard does not act on them
OTHERS = {
    "apt.txt": "system packages not installed (no apt in a recorded run)",
    "install.R": "R packages not installed",
    "DESCRIPTION": "R packages not installed",
    "Project.toml": "Julia environment not built",
    "REQUIRE": "Julia environment not built",
    "default.nix": "Nix environment not built",
    "Pipfile": "not read (use requirements.txt)",
    "Pipfile.lock": "not read (use requirements.txt)",
    "setup.py": "the project is not installed (it runs from its work folder)",
    "postBuild": "build script not run",
    "start": "start script not run",
}


@dataclass
class Needs:
    """The environment a version asks for."""

    python: str | None = None  # "X.Y" from runtime.txt, else the caller's Python
    requirements: list[str] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)  # files used, relative to the workspace
    not_honoured: list[str] = field(default_factory=list)  # "file: why"


def detect(root: Path, dockerfile_note: Callable[[], str] | None = None) -> Needs:
    """Read the configuration files of the workspace materialised at ``root``.

    ``dockerfile_note``: says why a ``Dockerfile`` is not used (the caller knows whether a
    container engine works here); asked only if there is one."""
    base = config_folder(root)
    prefix = "" if base == root else f"{base.name}/"
    needs = Needs()
    _requirements_txt(base, prefix, needs)
    _pyproject(base, prefix, needs)
    _runtime(base, prefix, needs)
    _environment_yml(base, prefix, needs)
    _others(base, prefix, needs, dockerfile_note)
    needs.requirements = sorted(set(needs.requirements))
    return needs


def config_folder(root: Path) -> Path:
    """``binder/`` or ``.binder/`` if the workspace has one, else the workspace itself."""
    found = [root / name for name in CONFIG_FOLDERS if (root / name).is_dir()]
    if len(found) > 1:
        raise ValidationError("the workspace has both binder/ and .binder/; keep only one "
                              "(repo2docker refuses the same)")
    return found[0] if found else root


def normalise(line: str) -> str:
    """One requirement, with its name in canonical form and no spaces or comment."""
    text = line.split(" #", 1)[0].strip()
    text = "".join(text.split())
    match = NAME.match(text)
    if match is None:
        return text
    name, rest = match.groups()
    return re.sub(r"[-_.]+", "-", name).lower() + rest


def _file(base: Path, name: str) -> Path | None:
    path = base / name
    return path if path.is_file() and not path.is_symlink() else None


def _requirements_txt(base: Path, prefix: str, needs: Needs) -> None:
    path = _file(base, "requirements.txt")
    if path is not None:
        needs.specs.append(prefix + "requirements.txt")
        _read_requirements(base, path, prefix, needs, depth=0)


def _read_requirements(base: Path, path: Path, prefix: str, needs: Needs, depth: int) -> None:
    rel = prefix + path.relative_to(base).as_posix()
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r", "--requirement")):
            _include(base, path, line, prefix, needs, depth)
        elif line.startswith("-"):
            needs.not_honoured.append(f"{rel}: {line!r} not used (options are not passed on; "
                                      "the machine's package index settings are used)")
        elif NAME.match(line) is None or "://" in line or line.startswith("."):
            needs.not_honoured.append(f"{rel}: {line!r} not installed (not a named "
                                      "requirement; only packages from an index are)")
        else:
            needs.requirements.append(normalise(line))


def _include(base: Path, path: Path, line: str, prefix: str, needs: Needs, depth: int) -> None:
    option = "--requirement" if line.startswith("--requirement") else "-r"
    included = (path.parent / line[len(option):].lstrip(" =")).resolve()
    inside = included.is_relative_to(base.resolve()) and included.is_file()
    if depth >= MAX_INCLUDES or not inside:
        rel = prefix + path.relative_to(base).as_posix()
        needs.not_honoured.append(f"{rel}: {line!r} not used (the file is missing or outside "
                                  "the workspace's configuration folder)")
        return
    needs.specs.append(prefix + included.relative_to(base.resolve()).as_posix())
    _read_requirements(base, included, prefix, needs, depth + 1)


def _pyproject(base: Path, prefix: str, needs: Needs) -> None:
    path = _file(base, "pyproject.toml")
    if path is None:
        return
    rel = prefix + "pyproject.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{rel} is not valid TOML ({exc}); fix it or remove it") from exc
    deps = doc.get("project", {}).get("dependencies")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        needs.not_honoured.append(f"{rel}: nothing installed (no [project] dependencies)")
        return
    needs.specs.append(rel)
    needs.requirements += [normalise(dep) for dep in deps]
    needs.not_honoured.append(f"{rel}: the project itself is not installed (its dependencies "
                              "are; it runs from its work folder)")


def _runtime(base: Path, prefix: str, needs: Needs) -> None:
    path = _file(base, "runtime.txt")
    if path is None:
        return
    rel = prefix + "runtime.txt"
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    match = RUNTIME.match(text)
    if match is None:
        needs.not_honoured.append(f"{rel}: {text[:40]!r} not used (only python-X.Y is "
                                  "understood)")
        return
    needs.python = f"{match.group(1)}.{match.group(2)}"
    needs.specs.append(rel)


def _environment_yml(base: Path, prefix: str, needs: Needs) -> None:
    for name in ("environment.yml", "environment.yaml"):
        path = _file(base, name)
        if path is not None:
            _read_environment(path, prefix + name, needs)
            return


def _read_environment(path: Path, rel: str, needs: Needs) -> None:
    import yaml

    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{rel} is not valid YAML; fix it or remove it") from exc
    deps = doc.get("dependencies", []) if isinstance(doc, dict) else []
    conda = [d for d in deps if isinstance(d, str) and normalise(d).split("=")[0] != "pip"]
    pip = [r for d in deps if isinstance(d, dict) for r in d.get("pip", []) or []]
    if pip:
        needs.specs.append(rel)
        needs.requirements += [normalise(str(r)) for r in pip]
    if conda:
        needs.not_honoured.append(f"{rel}: conda packages {', '.join(map(str, conda))} not "
                                  "installed (conda is not used; only the pip: part is)")


def _others(base: Path, prefix: str, needs: Needs,
            dockerfile_note: Callable[[], str] | None) -> None:
    for name, why in OTHERS.items():
        if (base / name).exists():
            needs.not_honoured.append(f"{prefix}{name}: {why}")
    if (base / "Dockerfile").exists():
        note = dockerfile_note() if dockerfile_note else "no container engine was looked for"
        needs.not_honoured.append(f"{prefix}Dockerfile: not used ({note})")
