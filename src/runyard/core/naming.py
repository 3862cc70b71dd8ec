"""Generated run names: ``adjective-noun``, unique within a store, never overwriting.

The words are coolname's two-word slugs (an adjective, then an animal). Importing coolname
builds its whole generator, which takes about 100 ms, so the two word lists are read out of
it once and kept in a cache file (``$XDG_CACHE_HOME/runyard``, by default ``~/.cache``), keyed
by the installed coolname; later processes only read that file. Without a usable cache, names
come from coolname itself.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runyard.errors import NameTaken, StoreError
from runyard.fsio import atomic_write_text

T = TypeVar("T")
ATTEMPTS = 20
Words = tuple[list[str], list[str]]
_words: Words | None = None


def generate_name() -> str:
    words = word_lists()
    if words is None:
        from coolname import generate_slug

        return str(generate_slug(2))
    return f"{_pick(words[0])}-{_pick(words[1])}"


def _pick(words: list[str]) -> str:
    """A random word (the ``secrets`` module would import ``random``, ``hmac``, ``base64``)."""
    return words[int.from_bytes(os.urandom(8), "big") % len(words)]


def word_lists() -> Words | None:
    """The adjectives and nouns of coolname's two-word slugs (cached), or ``None``."""
    global _words
    if _words is None:
        cache = _cache_file()
        _words = _read(cache) if cache is not None else None
        if _words is None:
            _words = _from_coolname()
            if _words is not None and cache is not None:
                _write(cache, _words)
    return _words


def _cache_file() -> Path | None:
    from importlib.util import find_spec

    try:
        spec = find_spec("coolname")  # finds the package without importing it
        origin = None if spec is None else spec.origin
        if origin is None:
            return None
        stat = os.stat(origin)
    except (ImportError, OSError, ValueError):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = f"{zlib.crc32(origin.encode()):08x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"
    return Path(base) / "runyard" / f"names-{key}.json"


def _read(path: Path) -> Words | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return _checked(data.get("adjectives"), data.get("nouns")) if isinstance(data, dict) else None


def _write(path: Path, words: Words) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"adjectives": words[0], "nouns": words[1]}))
    except (OSError, StoreError):
        pass  # no cache: the next process reads coolname again


def _from_coolname() -> Words | None:
    """Resolve coolname's ``2`` list (adjective x animal) into its two word lists."""
    try:
        from coolname.data import config
    except ImportError:
        return None
    try:
        top = _flatten(config, "2", want_pair=True)
    except (KeyError, TypeError, ValueError):
        return None
    return top if isinstance(top, tuple) else None


def _flatten(config: dict[str, Any], name: str, want_pair: bool = False) -> Words | list[str]:
    entry = config[name]
    kind = entry["type"]
    if kind == "words":
        return [str(word) for word in entry["words"]]
    if kind == "cartesian" and want_pair and len(entry["lists"]) == 2:
        first, second = (_flatten(config, sub) for sub in entry["lists"])
        checked = _checked(first, second)
        if checked is None:
            raise ValueError(name)
        return checked
    if kind == "nested" and want_pair and len(entry["lists"]) == 1:
        return _flatten(config, entry["lists"][0], want_pair=True)
    if kind == "nested" and not want_pair:
        words: list[str] = []
        for sub in entry["lists"]:
            part = _flatten(config, sub)
            if not isinstance(part, list):
                raise ValueError(sub)
            words.extend(part)
        return words
    raise ValueError(f"unexpected coolname list {name}")


def _checked(first: object, second: object) -> Words | None:
    """Two non-empty lists of lowercase one-word strings, or ``None``."""
    lists = []
    for words in (first, second):
        if not isinstance(words, list) or not words:
            return None
        if not all(isinstance(w, str) and w.isascii() and w.isalpha() and w.islower()
                   for w in words):
            return None
        lists.append(words)
    return lists[0], lists[1]


def with_unique_name(create: Callable[[str], T], name: str | None = None) -> T:
    """Call ``create(name)``; for a generated name, retry with fresh names on a collision.

    A name the user gave is never changed: its collision is raised as ``NameTaken``. After
    ``ATTEMPTS`` colliding two-word names a random suffix is added, so creation always ends.
    """
    if name is not None:
        return create(name)
    for attempt in range(ATTEMPTS + 1):
        candidate = generate_name()
        if attempt == ATTEMPTS:
            candidate = f"{candidate}-{os.urandom(3).hex()}"
        try:
            return create(candidate)
        except NameTaken:
            continue
    raise NameTaken(candidate)
