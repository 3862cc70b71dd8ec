"""Hatch build hook: the dashboard's built files go into every wheel and sdist.

``web/`` is built by ``npm ci && npm run build`` into ``src/runyard/server/static/`` (git-ignored
and listed as hatch ``artifacts``, so packaged all the same). When those files are missing and
Node is here, they are built first; a wheel built from the sdist finds them already there, so
``pip install`` never needs Node. Missing with no Node: a release build fails with a one-line
reason; an editable install goes on without the dashboard (``/`` then says how to build it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

STATIC = Path("src", "runyard", "server", "static", "index.html")


class DashboardBuild(BuildHookInterface):  # type: ignore[misc]
    """Builds web/ when its output is missing."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if (root / STATIC).is_file() or not (root / "web" / "package.json").is_file():
            return
        npm = shutil.which("npm")
        if npm is None:
            if version == "editable":
                self.app.display_warning("npm not found: the dashboard is not built")
                return
            raise RuntimeError("the dashboard (web/) is not built and npm is not installed: "
                               "install Node 20+ and build again, or build from the sdist")
        env = {**os.environ, "CI": "true"}
        for args in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
            subprocess.run(args, cwd=root / "web", env=env, check=True,
                           stdin=subprocess.DEVNULL)
