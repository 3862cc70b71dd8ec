"""Run ids: 26 characters of Crockford base32, unique, sorting by creation time.

48 bits of milliseconds since the epoch, then 80 bits that are random for the first id of a
millisecond and incremented for later ids in the same millisecond, so ids made by one process
sort strictly in creation order (the ULID layout).
"""

from __future__ import annotations

import os
import threading
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # every two digits: 10 bits at a time


def _encode(value: int, length: int) -> str:
    """``value`` (< 32 ** length) in ``length`` base32 digits (``length`` even)."""
    return "".join([_PAIRS[value >> shift & 1023] for shift in range(length * 5 - 10, -1, -10)])


def new_id(now_ms: int | None = None) -> str:
    """A new id; ``now_ms`` (for tests and imports) gives one for that moment, random within it."""
    global _last_ms, _last_rand
    if now_ms is not None:
        return _encode(now_ms << 80 | int.from_bytes(os.urandom(10), "big") >> 1, 26)
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms, rand = _last_ms, _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # room to increment
        _last_ms, _last_rand = ms, rand
    return _encode(ms << 80 | rand, 26)


def id_time(run_id: str) -> float:
    """The creation time (epoch seconds) encoded in an id."""
    ms = 0
    for ch in run_id[:10]:
        ms = ms * 32 + ALPHABET.index(ch)
    return ms / 1000


def looks_like_id(text: str) -> bool:
    return len(text) == 26 and all(c in ALPHABET for c in text)
