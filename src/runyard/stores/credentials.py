"""The tokens of runyard servers: which one an ``http(s)://`` store sends, and where they are kept.

A token is never an argument on a command line (other users can read those): ``runyard login
URL`` reads it from stdin or a hidden prompt and saves it here, in ``credentials.json`` in the
user's configuration folder (``RUNYARD_CONFIG_HOME``, else ``$XDG_CONFIG_HOME/runyard``, else
``~/.config/runyard``), readable by the user only (0600), changed under a lock and replaced
atomically. The token of a store is, first found: one written in its URL
(``http://TOKEN@host:port``), one given in code for that server (``remember``), then
``RUNYARD_TOKEN``, then the saved one for that server; with none, a ConfigError says how to
get one. A store's ``url`` never holds its token (it is passed to other processes' argv).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

from runyard.errors import ConfigError
from runyard.fsio import atomic_write_text
from runyard.stores.location import config_home

FILE_NAME = "credentials.json"
TOKEN_ENV = "RUNYARD_TOKEN"
LOCK_TIMEOUT_S = 30.0

_remembered: dict[str, str] = {}  # tokens given in code, by server (this process only)
_lock = threading.Lock()


def origin_of(url: str) -> tuple[str, str | None]:
    """``http(s)://[TOKEN@]host[:port][/prefix]`` → (the URL without its token, the token)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"a server store URL is http(s)://HOST:PORT, not {url.split('@')[-1]!r}")
    token = parts.password or parts.username or None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}", token


def remember(url: str, token: str) -> str:
    """Use ``token`` for the server at ``url`` in this process (a token given in code, as
    ``RuntimeConfiguration.remote`` takes it); the server's URL without any token."""
    origin, _ = origin_of(url)
    with _lock:
        _remembered[origin] = check_token(token)
    return origin


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
    with _lock:
        given = _remembered.get(origin)
    if given:
        return given
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return check_token(from_env)
    saved = saved_tokens().get(origin)
    if saved:
        return saved
    raise ConfigError(f"no token for the runyard server {origin}: run `runyard login {origin}` "
                      f"(the server's admin creates one with `runyard server token create`) or "
                      f"set {TOKEN_ENV}")


def login(url: str, token: str, *, check: bool = True) -> tuple[str, Path]:
    """Save ``token`` for the server at ``url`` after checking (unless not ``check``) that
    the server takes it; the server's URL and the credentials file."""
    origin, in_url = origin_of(url)
    if in_url:
        raise ConfigError("write the server's URL without a token (http(s)://HOST:PORT); "
                          "the token is read from stdin or asked for")
    token = check_token(token)
    if check:
        from runyard.stores.httpclient import HttpClient

        client = HttpClient(origin, token, patience=5.0)
        try:
            client.call("GET", "/runs", params={"limit": 1})
        finally:
            client.close()
    return origin, save_token(origin, token)
