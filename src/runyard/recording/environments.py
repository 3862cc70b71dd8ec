"""Built environments of recorded runs: a uv virtual environment per set of requirements.

A recorded run must run with the packages its version asks for (``envdetect``), and a reviewer
must be able to tell exactly which ones it had. So each environment is built once with ``uv``
into a cache beside the blob store, ``<blob folder's parent>/envs/<key>``, where the key is the
SHA-256 of the Python version, the platform tag and the normalised requirements, and reused by
every version that asks for the same. It is made in a temporary folder and renamed into place
(a relocatable venv: nothing in it names the temporary path), under a lock, so two builds of
one key never both build or see half an environment.

Its identity is recorded with each run: Python version, platform tag, and a pinned lock with
hashes (``uv pip compile --generate-hashes``, no index URLs) kept as a blob; the environment is
installed *from* that lock (``uv pip sync``), so the lock is what the run had. ``uv`` only uses
this machine's interpreters (``UV_PYTHON_DOWNLOADS=never``) and its package index settings:
pip's configuration (files and ``PIP_*`` variables; ``uv`` reads its own ``UV_*`` ones).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError, MissingDependencyError, RunyardError
from runyard.recording.envdetect import Needs, detect

META = "runyard-env.json"
LOCK = "requirements.lock"
TAIL_LINES = 5
Tick = Callable[[], None]
Log = Callable[[str], None]


class BuildFailed(RunyardError):
    """An environment did not build; the message ends with the builder's last lines."""


@dataclass
class Environment:
    """What a recorded run runs with; ``path`` is ``None`` with ``--no-env``."""

    python: str
    platform: str
    path: Path | None = None
    key: str | None = None
    lock: str | None = None  # digest of the lock blob
    base_prefix: str | None = None  # the interpreter's installation, for the sandbox
    specs: list[str] = field(default_factory=list)
    not_honoured: list[str] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.path / "bin" if self.path is not None else Path(sys.executable).parent

    def identity(self) -> dict[str, Any]:
        """The run's ``environment`` field."""
        return {"python": self.python, "platform": self.platform, "lock": self.lock,
                "specs": list(self.specs), "not_honoured": list(self.not_honoured),
                "built": self.path is not None}


def caller_environment(needs: Needs | None = None) -> Environment:
    """``--no-env``: the caller's own Python, as it is."""
    import platform

    env = Environment(platform.python_version(), platform_tag(), base_prefix=sys.base_prefix)
    if needs is not None:
        env.not_honoured = [*needs.not_honoured,
                            *(f"{spec}: not used (--no-env)" for spec in needs.specs)]
    return env


def platform_tag() -> str:
    import sysconfig

    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def prepare(context: Any, work: Path, *, use_env: bool = True, pinned: str | None = None,
            tick: Tick | None = None, log: Log | None = None) -> Environment:
    """The environment the version materialised at ``work`` asks for, built or from the
    cache. ``pinned``: the digest of a lock to install exactly (a reproduction: see
    ``_pinned``). ``tick`` is called while tools run (the run's lease); ``log`` gets their
    output."""
    needs = detect(work, dockerfile_note)
    if not use_env:
        return caller_environment(needs)
    interpreter = find_python(needs.python)
    python, prefix, tag = describe(interpreter)
    key = env_key(python, tag, needs.requirements)
    lock_text = None
    if pinned is not None and not _holds(envs_root(context) / key, pinned):
        key, lock_text = _pinned(context, python, tag, pinned, key)
    folder = envs_root(context) / key
    with _key_lock(folder):
        if not (folder / META).is_file():
            for stale in folder.parent.glob(f".tmp-{key}-*"):  # a killed build's (we hold
                shutil.rmtree(stale, ignore_errors=True)  # the key: no other is under way)
            _build(folder, interpreter, needs.requirements, tick, log, lock_text)
    lock = context.blobs.put_bytes((folder / LOCK).read_bytes()).digest
    return Environment(python, tag, folder, key, lock, prefix, needs.specs, needs.not_honoured)


def _holds(folder: Path, digest: str) -> bool:
    """Whether the environment at ``folder`` is built and was installed from lock ``digest``."""
    try:
        data = (folder / LOCK).read_bytes()
    except OSError:
        return False
    return (folder / META).is_file() and hashlib.sha256(data).hexdigest() == digest


def _pinned(context: Any, python: str, tag: str, digest: str,
            usual: str) -> tuple[str, bytes | None]:
    """The key and text of an environment installed from lock ``digest`` exactly (the
    requirements may resolve to newer packages today); the usual key if the lock's blob is
    not here (the comparison of locks then tells)."""
    if not context.blobs.exists(digest):
        return usual, None
    with context.blobs.open(digest, verify=True) as handle:
        data = handle.read()
    return env_key(python, tag, [f"lock:{digest}"]), data


def envs_root(context: Any) -> Path:
    return Path(context.blob_root).parent / "envs"


def env_key(python: str, tag: str, requirements: list[str]) -> str:
    text = json.dumps([python, tag, sorted(requirements)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def uv_bin() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise MissingDependencyError("uv", "record") from None
        return found


def uv_env() -> dict[str, str]:
    """The environment ``uv`` runs in: no interpreter downloads, no active environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    return env


def find_python(version: str | None) -> str:
    """The interpreter for ``version`` ("X.Y") among this machine's; the caller's if None."""
    if version is None:
        return sys.executable
    done = subprocess.run([uv_bin(), "python", "find", "--no-project", version],
                          capture_output=True, text=True, env=uv_env())
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(f"runtime.txt asks for Python {version}, which this machine does "
                          "not have (runyard does not download interpreters); install it or "
                          "change runtime.txt")
    return done.stdout.strip().splitlines()[-1]


def describe(interpreter: str) -> tuple[str, str, str]:
    """Python version, installation prefix and platform tag of ``interpreter``."""
    if interpreter == sys.executable:
        import platform

        return platform.python_version(), sys.base_prefix, platform_tag()
    code = ("import platform,sys,sysconfig;print(platform.python_version());"
            "print(sys.base_prefix);print(sysconfig.get_platform())")
    done = subprocess.run([interpreter, "-I", "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"the Python at {interpreter} does not start: "
                          f"{done.stderr.strip()[-200:]}")
    version, prefix, plat = done.stdout.split("\n")[:3]
    return version, prefix, plat.replace("-", "_").replace(".", "_")


def dockerfile_note() -> str:
    """Why a Dockerfile is not used here."""
    for engine in ("podman", "docker"):
        path = shutil.which(engine)
        if path is not None and _engine_works(path):
            return f"{engine} works here, but runyard does not build images"
    return "no working podman or docker on this machine"


def _engine_works(path: str) -> bool:
    try:
        done = subprocess.run([path, "info"], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextlib.contextmanager
def _key_lock(folder: Path) -> Any:
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _build(folder: Path, interpreter: str, requirements: list[str], tick: Tick | None,
           log: Log | None, lock_text: bytes | None = None) -> None:
    """Build into a temporary folder beside ``folder``, then rename it into place; from
    ``lock_text`` if given, else from a lock compiled from ``requirements``."""
    import uuid

    temp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        uv = uv_bin()
        _tool([uv, "venv", "--relocatable", "--quiet", "--python", interpreter, str(temp)],
              tick, log)
        if lock_text is None:
            lock = _compile(uv, temp, requirements, tick, log)
        else:
            (temp / LOCK).write_bytes(lock_text)
            lock = lock_text.decode("utf-8", "replace")
        if lock.strip():
            _tool([uv, "pip", "sync", "--python", str(temp / "bin" / "python"),
                   *index_options(), str(temp / LOCK)], tick, log)
        meta = {"requirements": requirements, "interpreter": interpreter}
        (temp / META).write_text(json.dumps(meta, sort_keys=True))
        os.replace(temp, folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def index_options(*, constraints: bool = False) -> list[str]:
    from runyard.recording.pipconfig import index_options as options

    return options(constraints=constraints)


def _compile(uv: str, temp: Path, requirements: list[str], tick: Tick | None,
             log: Log | None) -> str:
    """Pin ``requirements`` with hashes into ``temp/requirements.lock``; its text."""
    wanted = temp / "requirements.in"
    wanted.write_text("".join(f"{r}\n" for r in requirements))
    lock = temp / LOCK
    if not requirements:
        lock.write_text("")
        return ""
    _tool([uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--generate-hashes",
           "--python", str(temp / "bin" / "python"), *index_options(constraints=True),
           "-o", str(lock), str(wanted)], tick, log)
    return lock.read_text()


def _tool(argv: list[str], tick: Tick | None, log: Log | None) -> None:
    """Run a build tool; its output line by line to ``log``; BuildFailed with its last lines."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=uv_env(), cwd="/")
    lines: list[str] = []
    reader = threading.Thread(target=_read, args=(proc, lines, log), daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            reader.join(0.1)
            if tick is not None:
                tick()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join()
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in lines[-TAIL_LINES:] if line.strip())
        what = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv[:3]))
        raise BuildFailed(f"the environment did not build ({what} exited "
                          f"{proc.returncode}): {tail or 'no output'}")


def _read(proc: subprocess.Popen[bytes], lines: list[str], log: Log | None) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        lines.append(line)
        if log is not None:
            log(line)
