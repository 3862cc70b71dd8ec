"""Runtime configurations: named settings saying where a workflow's task runs execute.

Three are built in: ``in_process`` (threads of the caller), ``process`` (a detached supervisor
with a pool of worker processes) and ``ray`` (a local Ray cluster started on demand on an
uncommon fixed port, and kept for later runs). Others are saved by name in the user's
configuration file ``runtimes.yaml`` in ``RUNYARD_CONFIG_HOME`` (default
``$XDG_CONFIG_HOME/runyard``, else ``~/.config/runyard``); every change to that file is made
under a file lock and written atomically (temp file, fsync, replace), readable by the user only
since a remote configuration holds a token. A configuration for a remote Ray cluster is named
after its URI unless given a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runyard.errors import ConfigError, ConfigNotFound, ValidationError
from runyard.runtimes.base import Runtime
from runyard.stores.location import config_home

if TYPE_CHECKING:
    from runyard.runtimes.raycluster import LocalCluster

RUNTIMES = ("in_process", "process", "ray")
BUILTIN_NAMES = RUNTIMES
FILE_NAME = "runtimes.yaml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}\Z")


def config_file() -> Path:
    return config_home() / FILE_NAME


def name_for_uri(uri: str) -> str:
    """``ray://head.example:10001`` → ``ray-head.example-10001``."""
    parts = urlsplit(uri if "://" in uri else f"ray://{uri}")
    pieces = [parts.scheme or "ray", parts.hostname or "cluster"]
    if parts.port:
        pieces.append(str(parts.port))
    return re.sub(r"[^A-Za-z0-9._\-]+", "-", "-".join(pieces)).strip("-")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"invalid configuration name {name!r}: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class RuntimeConfiguration:
    """Where task runs execute: ``runtime`` (in_process, process or ray) and its options."""

    name: str
    runtime: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.runtime not in RUNTIMES:
            raise ConfigError(
                f"unknown runtime {self.runtime!r} in configuration {self.name!r}; "
                f"use one of: {', '.join(RUNTIMES)}"
            )

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def in_process(cls, max_workers: int | None = None, *, name: str = "in_process"
                   ) -> RuntimeConfiguration:
        return cls(name, "in_process", _given(max_workers=max_workers))

    @classmethod
    def process(cls, max_workers: int | None = None, *, name: str = "process"
                ) -> RuntimeConfiguration:
        return cls(name, "process", _given(max_workers=max_workers))

    @classmethod
    def ray(cls, address: str | None = None, *, port: int | None = None,
            num_cpus: int | None = None, name: str | None = None) -> RuntimeConfiguration:
        """A Ray cluster at ``address``, or (none given) a local one on ``port``."""
        default = "ray" if address is None and port is None else None
        name = name or default or name_for_uri(address or f"ray://127.0.0.1:{port}")
        return cls(name, "ray", _given(address=address, port=port, num_cpus=num_cpus))

    @classmethod
    def remote(cls, uri: str, token: str, *, name: str | None = None) -> RuntimeConfiguration:
        """A remote Ray cluster at ``uri`` (``ray://host:port``) using auth ``token``; or,
        for an ``http(s)://`` ``uri``, a runyard server: runs are recorded in that server's
        store with ``token`` (their task runs execute in this process)."""
        if not uri or not token:
            raise ValidationError("a remote configuration needs a URI and a token")
        if uri.split(":", 1)[0].lower() in ("http", "https"):
            return cls(name or name_for_uri(uri), "in_process", {"store": uri, "token": token})
        return cls(name or name_for_uri(uri), "ray", {"address": uri, "token": token})

    @property
    def store_url(self) -> str | None:
        """The store this configuration records runs in (a server's), or None for the
        configured one; the server's token is made known to this process's http stores."""
        url = self.options.get("store")
        if url and self.options.get("token"):
            from runyard.stores.credentials import remember

            return remember(str(url), str(self.options["token"]))
        return None if url is None else str(url)

    # -- the saved configurations -----------------------------------------------------------
    def save(self, name: str | None = None) -> RuntimeConfiguration:
        """Save under ``name`` (default: its own); built-in names cannot be replaced."""
        saved = RuntimeConfiguration(check_name(name or self.name), self.runtime,
                                     dict(self.options))
        if saved.name in BUILTIN_NAMES:
            raise ValidationError(
                f"{saved.name!r} is a built-in configuration; save yours under another name"
            )
        from runyard.engine.configfile import update

        update(config_file(), lambda data: {**data, saved.name: saved.to_dict()})
        return saved

    @staticmethod
    def list_configs() -> list[RuntimeConfiguration]:
        """The built-in configurations, then the saved ones by name."""
        from runyard.engine.configfile import read

        saved = read(config_file())
        return [*(builtin(n) for n in BUILTIN_NAMES),
                *(from_dict(n, saved[n]) for n in sorted(saved))]

    @staticmethod
    def load(name: str) -> RuntimeConfiguration:
        if name in BUILTIN_NAMES:
            return builtin(name)
        from runyard.engine.configfile import read

        saved = read(config_file())
        if name not in saved:
            raise ConfigNotFound(name, [*BUILTIN_NAMES, *sorted(saved)])
        return from_dict(name, saved[name])

    @staticmethod
    def delete(name: str) -> None:
        if name in BUILTIN_NAMES:
            raise ValidationError(f"{name!r} is a built-in configuration; it cannot be deleted")
        from runyard.engine.configfile import update

        def drop(data: dict[str, Any]) -> dict[str, Any]:
            if name not in data:
                raise ConfigNotFound(name, [*BUILTIN_NAMES, *sorted(data)])
            return {k: v for k, v in data.items() if k != name}

        update(config_file(), drop)

    # -- use --------------------------------------------------------------------------------
    def to_dict(self, redact: bool = False) -> dict[str, Any]:
        options = dict(self.options)
        if redact and options.get("token"):
            options["token"] = "***"
        return {"runtime": self.runtime, **options}

    @property
    def detached(self) -> bool:
        """Runs under a detached supervisor process (so the caller may exit)."""
        return self.runtime == "process"

    def make_runtime(self) -> Runtime:
        """A new, not yet started, runtime for this configuration."""
        opts = self.options
        if self.runtime == "in_process":
            from runyard.runtimes.in_process import InProcessRuntime

            return InProcessRuntime(opts.get("max_workers"))
        if self.runtime == "process":
            from runyard.runtimes.process import ProcessRuntime

            return ProcessRuntime(opts.get("max_workers"))
        from runyard.runtimes.ray import RayRuntime

        cluster = self.local_cluster()
        if cluster is None:
            return RayRuntime(address=opts["address"], token=opts.get("token"))
        return RayRuntime(cluster=cluster)

    def local_cluster(self) -> LocalCluster | None:
        """The local Ray cluster this configuration runs on (a ``ray`` one with no address)."""
        if self.runtime != "ray" or self.options.get("address"):
            return None
        from runyard.runtimes.raycluster import DEFAULT_PORT, LocalCluster

        state = config_home() / "ray" / f"{self.name}.json"
        return LocalCluster(state, int(self.options.get("port") or DEFAULT_PORT),
                            self.options.get("num_cpus"))

    def start(self) -> str | None:
        """Start now, ahead of the first run, what this configuration's runs execute on, and
        leave it up: its local Ray cluster (reused if it is up already), whose address is
        returned; ``runyard.engine.stop_ray_cluster(name)`` or ``runyard ray stop NAME``
        stops it. The other runtimes start with each run: nothing to do (``None``)."""
        cluster = self.local_cluster()
        return None if cluster is None else cluster.ensure()


def builtin(name: str) -> RuntimeConfiguration:
    return RuntimeConfiguration(name, name, {})


def from_dict(name: str, data: Any) -> RuntimeConfiguration:
    if not isinstance(data, dict) or "runtime" not in data:
        raise ConfigError(f"configuration {name!r} in {config_file()} needs a `runtime`")
    options = {k: v for k, v in data.items() if k != "runtime"}
    return RuntimeConfiguration(name, str(data["runtime"]), options)


def resolve(config: str | RuntimeConfiguration | None) -> RuntimeConfiguration:
    """A configuration object from a name (``None``: ``in_process``) or an object."""
    if config is None:
        return builtin("in_process")
    if isinstance(config, RuntimeConfiguration):
        return config
    if isinstance(config, str):
        return RuntimeConfiguration.load(config)
    raise ValidationError(
        f"a runtime configuration is a name or a RuntimeConfiguration, not {type(config).__name__}"
    )


def _given(**options: Any) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}
