"""A live dashboard for the run-page tests: a real server over a SQLite store seeded with one
run of every kind, and headless Chromium (Playwright) logged in to it.

Why a module of its own: the run-page tests and the chart benchmark need the same store (a
tracked run with a million points, a workflow, a recorded run and its version, artifacts of
each previewable type) and the same browser set-up (the machine's /usr/bin/chromium with the
flags RECIPES.md names, console errors collected, screenshots kept under test-output/).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.core.context import StoreContext, open_context
from runyard.core.runs import create_run
from runyard.model import Artifact, Event, LogLine, Status

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "src" / "runyard" / "server" / "static" / "index.html"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
SHOTS = ROOT / "test-output" / "screenshots"
MILLION = 1_000_000

TICKER = """\
name: ticker
command: ["bash", "-c", "for i in $(seq 1 600); do echo \\"tick $i\\"; \\
  echo \\"warn $i\\" >&2; sleep 0.1; done"]
"""

HELLO = """\
name: hello
buffers:
  inputs: ["input"]
  outputs: ["output"]
command: ["bash", "-c", "inp=$(cat \\"$INPUT_PIPE\\"); \\
  echo \\"Hello ${inp}\\" > \\"$OUTPUT_PIPE\\""]
"""


def build_web() -> None:
    """Build web/ into the package when it is not built, or older than a source file."""
    web = ROOT / "web"
    sources = [p.stat().st_mtime for p in (web / "src").rglob("*") if p.is_file()]
    if STATIC.exists() and STATIC.stat().st_mtime >= max(sources, default=0):
        return
    if not (web / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
    subprocess.run(["npm", "run", "build"], cwd=web, check=True)


def png(width: int = 8, height: int = 8) -> bytes:
    """A small red PNG, written by hand (no imaging library needed)."""
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def put_artifacts(context: StoreContext, run_id: str, files: dict[str, bytes],
                  stage: str = "put") -> None:
    from runyard.model.records import Stage

    arts = []
    for name, data in files.items():
        ref = context.blobs.put_bytes(data)
        arts.append(Artifact(name, ref.digest, len(data), Stage(stage)))
    context.store.add_artifacts(run_id, arts)


def seed_tracked(context: StoreContext, points: int = MILLION, name: str = "big-loss") -> str:
    """A finished tracked run: ``loss`` with ``points`` values (a spike at 3/4), system
    metrics, events, logs on two streams, fields of every sort and three artifacts."""
    import numpy as np

    store, now = context.store, time.time()
    run = create_run(store, name=name, folder="/team/exp", tags=["dashboard", "million"],
                     description="a million points", status=Status.RUNNING,
                     metadata={"dataset": "mnist", "nested": {"a": 1}},
                     parameters={"lr": 0.001, "layers": [64, 32]})
    steps = np.arange(points, dtype=np.int64)
    values = np.exp(-steps / (points / 5)) + 0.01 * np.sin(steps / 50.0)
    values[points * 3 // 4] = 5.0  # a one-point spike M4 must keep
    times = now - 3600 + steps * (3600 / points)
    chunk = 200_000
    for at in range(0, points, chunk):
        part = slice(at, at + chunk)
        store.append_metric_columns(run.id, ["loss"] * len(steps[part]), values[part].tolist(),
                                    steps[part].tolist(), times[part].tolist())
    cpu = [("system.cpu.percent", float(20 + i % 30), i, now - 300 + i) for i in range(300)]
    store.append_metric_columns(run.id, [c[0] for c in cpu], [c[1] for c in cpu],
                                [c[2] for c in cpu], [c[3] for c in cpu])
    store.append_events(run.id, [Event(now - 60, "epoch 1 done"),
                                 Event(now - 30, "checkpoint saved", "warning")])
    lines = [LogLine(now - 50 + i, f"line {i} of training", "stdout") for i in range(40)]
    store.append_logs(run.id, [*lines, LogLine(now - 5, "a warning on stderr", "stderr")])
    put_artifacts(context, run.id, {
        "notes.txt": b"hello from the artifact\nsecond line\n",
        "tables/results.csv": b"epoch,loss,acc\n1,0.9,0.5\n2,0.5,\"0.7\"\n",
        "plots/red.png": png(),
    })
    store.update_run(run.id, code={"commit": "abc123", "branch": "main", "dirty": False},
                     environment={"python": "3.11", "platform": "linux"})
    store.update_status(run.id, Status.SUCCEEDED)
    return run.id


def running_tracked(context: StoreContext, name: str) -> str:
    """A tracked run left running, owned by this (live) process, with ten ``acc`` values."""
    from runyard.processes.owners import this_owner

    run = create_run(context.store, name=name, status=Status.RUNNING, owner=this_owner(),
                     heartbeat=time.time())
    add_points(context, run.id, "acc", range(10))
    return run.id


def add_points(context: StoreContext, run_id: str, name: str, steps: range) -> None:
    now = time.time()
    context.store.append_metric_columns(run_id, [name] * len(steps), [s / 10 for s in steps],
                                        list(steps), [now + s * 1e-3 for s in steps])


def seed_workflow(context: StoreContext) -> str:
    """A finished workflow run of ``wf_defs.fan(3)``: three ``add`` task runs into ``total``."""
    import wf_defs

    made = wf_defs.fan(3).run("in_process", store=context.store)
    made.get_results(wait=True)
    return str(made.run_id)


def seed_recorded(context: StoreContext, root: Path) -> tuple[str, str, str]:
    """A recorded run of a workspace script that writes outputs, and its reproduction: the
    ids of the version, the recorded run and the reproduction."""
    from runyard.recording.record import record

    ws = root / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "runyard.yaml").write_text("")
    (ws / "data" / "input.csv").write_text("x,y\n1,2\n")
    (ws / "main.py").write_text(
        "import os\nos.makedirs('out', exist_ok=True)\n"
        "open('out/result.txt', 'w').write('forty-two\\n')\nprint('recorded run says hi')\n")
    run = record(context, ws, ["main.py"], executor="local", use_env=False)
    again = record(context, ws, ["main.py"], version=run.internals["version"],
                   executor="local", use_env=False, origin=run.id)
    return run.internals["version"], run.id, again.id


@dataclass
class Dashboard:
    """A served store: ``base`` URL, ``token``, ``context``, the seeded runs by kind."""

    base: str
    token: str
    context: StoreContext
    url: str
    runs: dict[str, str] = field(default_factory=dict)

    def login(self, page: Any, path: str = "/") -> None:
        from urllib.parse import quote

        page.goto(f"{self.base}/login?token={quote(self.token)}&next={quote(path, safe='')}")

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
        env.update(RUNYARD_STORE=self.base, RUNYARD_TOKEN=self.token, RAY_AUTH_MODE="disabled",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
        return env

    def runyard(self, cwd: Path, *args: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runyard", *args], cwd=cwd, text=True,
                              capture_output=True, env=self.cli_env(), timeout=timeout)


@contextmanager
def dashboard(root: Path) -> Iterator[Dashboard]:
    """The app over a fresh SQLite store under ``root``, served on 127.0.0.1."""
    from server_helpers import served, token

    build_web()
    url = f"sqlite:///{root}/store/runyard.db"
    (root / "store").mkdir(parents=True, exist_ok=True)
    context = open_context(url)
    with served(context) as server:
        yield Dashboard(server.base, token(context.store), context, url)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (the machine's, with RECIPES.md's flags)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, width: int = 1400) -> Any:
    """A fresh page (its own cookies); console and page errors gathered in ``page.errors``."""
    page = browser.new_context(viewport={"width": width, "height": 1000},
                               accept_downloads=True).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def shot(page: Any, tmp: Path, name: str) -> Path:
    """A full-page screenshot under ``tmp`` and test-output/screenshots/; the latter's path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(tmp / f"{name}.png"), full_page=True)
    target = SHOTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target
