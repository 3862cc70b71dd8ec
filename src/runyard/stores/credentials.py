"""The tokens of runyard servers: which one an ``http(s)://`` store sends, and where they are kept.

A token is never an argument on a command line (other users can read those): ``runyard login
URL`` reads it from stdin or a hidden prompt and saves it here, in ``credentials.json`` in the
user's configuration folder (``RUNYARD_CONFIG_HOME``, else ``$XDG_CONFIG_HOME/runyard``, else
``~/.config/runyard``), readable by the user only (0600), changed under a lock and replaced
atomically. The token of a store is, first found: one written in its URL
(``http://TOKEN@host:port``, for a runtime in another process), ``RUNYARD_TOKEN``, the saved one
for that server; with none, a ConfigError says how to get one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runyard.errors import ConfigError
from runyard.fsio import atomic_write_text

FILE_NAME = "credentials.json"
TOKEN_ENV = "RUNYARD_TOKEN"
LOCK_TIMEOUT_S = 30.0


def config_home() -> Path:
    """The user's runyard configuration folder (as ``runyard.engine.config`` finds it)."""
    explicit = os.environ.get("RUNYARD_CONFIG_HOME")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "runyard"


def credentials_file() -> Path:
    return config_home() / FILE_NAME


def check_token(token: object) -> str:
    """``token`` stripped, if it could be one (no spaces, printable), else a ConfigError."""
    text = token.strip() if isinstance(token, str) else ""
    if not text or not text.isprintable() or any(c.isspace() for c in text) or len(text) > 512:
        raise ConfigError("that is not a runyard token; a token looks like ry_… (ask the "
                          "server's admin: `runyard server token create --name NAME`)")
    return text


def saved_tokens() -> dict[str, str]:
    """The saved tokens by server URL (none when there is no file)."""
    path = credentials_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"cannot read the saved tokens in {path}; remove the file and "
                          "`runyard login` again") from None
    servers = data.get("servers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{path} is not a runyard credentials file; remove it and "
                          "`runyard login` again")
    return {str(k): str(v) for k, v in servers.items()}


def save_token(origin: str, token: str) -> Path:
    """Keep ``token`` for the server at ``origin`` (replacing its old one); the file."""
    from filelock import FileLock, Timeout

    token, path = check_token(token), credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            servers = {**saved_tokens(), origin: token}
            text = json.dumps({"servers": servers}, indent=1, sort_keys=True)
            atomic_write_text(path, text + "\n", mode=0o600)
    except Timeout:
        raise ConfigError(f"{path} stayed locked for {LOCK_TIMEOUT_S:.0f}s; try again") from None
    return path


def token_for(origin: str, in_url: str | None = None) -> str:
    """The token to send to the server at ``origin`` (see the module docstring)."""
    if in_url:
        return check_token(in_url)
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return check_token(from_env)
    saved = saved_tokens().get(origin)
    if saved:
        return saved
    raise ConfigError(f"no token for the runyard server {origin}: run `runyard login {origin}` "
                      f"(the server's admin creates one with `runyard server token create`) or "
                      f"set {TOKEN_ENV}")
