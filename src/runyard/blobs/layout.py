"""Where a blob lives on disk: ``<root>/<first 2 hex digits>/<other 62 hex digits>`` of its
digest (``<root>/blake3/...`` for a BLAKE3 one), and the small file-system chores around that
layout: making a fan-out folder, listing the stored digests, renewing a blob's mtime."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from runyard.blobs.digests import B3_PREFIX, BLAKE3, DIGEST, check_digest

_FANOUT = re.compile(r"^[0-9a-f]{2}\Z")


def parts(digest: str) -> tuple[str, ...]:
    """The blob's path under the root: two hex digits of fan-out, then the rest."""
    digest = check_digest(digest)
    if digest.startswith(B3_PREFIX):
        hexdigest = digest[len(B3_PREFIX):]
        return BLAKE3, hexdigest[:2], hexdigest[2:]
    return digest[:2], digest[2:]


def digests_under(root: Path, prefix: str) -> Iterator[str]:
    """The digests of the blobs in ``root``'s fan-out folders, sorted, each after ``prefix``."""
    if not root.is_dir():
        return
    for fan in sorted(p for p in root.iterdir() if _FANOUT.match(p.name)):
        if not fan.is_dir():
            continue
        for entry in sorted(fan.iterdir()):
            digest = prefix + fan.name + entry.name
            if DIGEST.match(digest) and entry.is_file():
                yield digest


def make_folder(folder: str) -> None:
    """Make a fan-out folder (and the ``blake3`` one above it if need be)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


def touch(path: Path | str) -> None:
    """Renew the mtime of a blob found already there when put again: a garbage collection
    (``runyard.recording.collect``) keeps blobs younger than its grace period, so a writer
    that reuses an old blob before it writes the entry naming it does not lose it."""
    with contextlib.suppress(OSError):  # (another user's blob in a shared store)
        os.utime(path)
